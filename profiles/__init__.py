"""hubflow profiles: admin-defined resource profiles (YAML), their validation, quotas, and the
server-side resolution of a spawn form.

    catalog = load_profiles(["/etc/hubflow/profiles"])
    catalog.profiles_for(user_groups)            # what the spawn page offers
    resolved = catalog.resolve(form, user_groups)  # ResolvedProfile, or ChoiceError
    catalog.check_server_start(user_groups, running_servers=1, running_gpus=0,
                               requested_gpus=resolved.gpu_count)  # or QuotaError
"""

from .catalog import ProfileCatalog
from .choices import field_name, resolve
from .display import describe_resources, display_view
from .errors import ChoiceError, ProfileError, QuotaError
from .loader import load_profiles
from .model import Profile
from .quotas import Limit, UserQuota, check_job_start, check_server_start, effective_quota
from .resolved import ResolvedProfile

__all__ = [
    "ChoiceError",
    "Limit",
    "Profile",
    "ProfileCatalog",
    "ProfileError",
    "QuotaError",
    "ResolvedProfile",
    "UserQuota",
    "check_job_start",
    "check_server_start",
    "describe_resources",
    "display_view",
    "effective_quota",
    "field_name",
    "load_profiles",
    "resolve",
]
