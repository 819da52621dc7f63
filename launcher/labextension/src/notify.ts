/** Job state changes as JupyterLab notifications. */
import { Notification } from '@jupyterlab/apputils';

import { FINISHED, IJob } from './api';
import { formatDuration, label as itemLabel } from './util';
import { IStateChange } from './watcher';

/** How long a notification of a job that is under way stays up. */
const TRANSIENT_MS = 5000;

function duration(job: IJob): string {
  return formatDuration((Date.parse(job.finished!) - Date.parse(job.created)) / 1000);
}

/** The notification's words and kind for a job's new state ('' for none: Pending is brief). */
export function describe(job: IJob): [string, Notification.TypeOptions] {
  const label = `Job ${itemLabel(job)}`;
  switch (job.state) {
    case 'Queued':
      return [`${label} is queued${job.reason ? `: ${job.reason}` : ''}`, 'info'];
    case 'Running':
      return [`${label} is running on ${job.workers} workers`, 'info'];
    case 'Succeeded':
      return [`${label} succeeded in ${duration(job)}`, 'success'];
    case 'Failed': {
      const where = job.failing_rank !== null ? ` (rank ${job.failing_rank})` : '';
      const why = job.error?.message ? `: ${job.error.message}` : '';
      return [`${label} failed${where}${why}`, 'error'];
    }
    case 'Cancelled':
      return [`${label} was cancelled`, 'warning'];
    default:
      return ['', 'default'];
  }
}

/** Notify one state change; `show` opens the job in the Jobs panel. */
export function notifyStateChange(
  { item: job }: IStateChange<IJob>,
  show: (id: string) => void
): void {
  const [message, type] = describe(job);
  if (!message) {
    return;
  }
  Notification.emit(message, type, {
    // a failure stays until read; an ended job stays a while; one under way passes
    autoClose: type === 'error' ? false : FINISHED.has(job.state) ? 2 * TRANSIENT_MS : TRANSIENT_MS,
    actions: [{ label: 'Show', callback: () => show(job.id) }]
  });
}
