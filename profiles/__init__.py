"""hubflow profiles: admin-defined resource profiles (YAML), their validation, quotas, and the
server-side resolution of a spawn form.

    catalog = load_profiles(["/etc/hubflow/profiles"])
    catalog.profiles_for(user_groups)            # what the spawn page offers
    resolved = catalog.resolve(form, user_groups)  # ResolvedProfile, or ChoiceError
    usage = Usage.of(holdings, user, user_groups)   # what the user and their groups hold
    check_server(catalog.effective_quota(user_groups), usage, resolved.gpu_count)  # QuotaError
"""

from .catalog import ProfileCatalog
from .choices import field_name, resolve
from .display import describe_resources, display_view
from .errors import ChoiceError, ProfileError, QuotaError
from .loader import load_profiles
from .model import Profile
from .quotas import (
    Holding,
    Limit,
    Usage,
    UserQuota,
    check_gpus,
    check_job_start,
    check_server,
    check_server_start,
    effective_quota,
    job_wait_reason,
)
from .resolved import ResolvedProfile

__all__ = [
    "ChoiceError",
    "Holding",
    "Limit",
    "Profile",
    "ProfileCatalog",
    "ProfileError",
    "QuotaError",
    "ResolvedProfile",
    "Usage",
    "UserQuota",
    "check_gpus",
    "check_job_start",
    "check_server",
    "check_server_start",
    "describe_resources",
    "display_view",
    "effective_quota",
    "field_name",
    "job_wait_reason",
    "load_profiles",
    "resolve",
]
