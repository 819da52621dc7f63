/**
 * The jobs API as the browser reaches it: through this server's `/hubflow/api/jobs` (the
 * server extension `hubflow.launcher.serverext`), which adds the server's own token.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A job as the jobs API describes it (the fields the panel shows). */
export interface IJob {
  id: string;
  name: string;
  state: JobState;
  reason: string | null;
  workers: number;
  gpus_per_worker: number;
  created: string;
  finished: string | null;
  failing_rank: number | null;
  error: { message?: string } | null;
}

export type JobState =
  | 'Queued'
  | 'Pending'
  | 'Running'
  | 'Succeeded'
  | 'Failed'
  | 'Cancelled';

/** The states a job never leaves. */
export const FINISHED: ReadonlySet<JobState> = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** One line a rank printed. */
export interface ILogLine {
  rank: number;
  offset: number;
  line: string;
}

const settings = ServerConnection.makeSettings();

function jobsUrl(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'hubflow/api/jobs', ...parts);
}

/** The answer to a call; an error with the service's message when it refused. */
async function call(url: string, init: RequestInit = {}): Promise<Response> {
  const response = await ServerConnection.makeRequest(url, init, settings);
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not JSON: keep the status text
    }
    throw new Error(`${message} (${response.status})`);
  }
  return response;
}

/** The user's jobs, newest first. */
export async function listJobs(): Promise<IJob[]> {
  const jobs: IJob[] = (await (await call(jobsUrl())).json()).jobs;
  return jobs.sort((a, b) => b.created.localeCompare(a.created));
}

/** Cancel a job; its new model. */
export async function cancelJob(id: string): Promise<IJob> {
  return (await call(jobsUrl(id, 'cancel'), { method: 'POST' })).json();
}

/**
 * Follow one rank's log from `offset`: `onLine` gets each line as it is printed, until the job
 * has ended and every line was sent, or `signal` aborts.
 */
export async function followLog(
  id: string,
  rank: number,
  offset: number,
  onLine: (line: ILogLine) => void,
  signal: AbortSignal
): Promise<void> {
  const query = URLExt.objectToQueryString({ rank: String(rank), offset: String(offset), follow: '1' });
  const response = await call(jobsUrl(id, 'logs') + query, { signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const text of lines) {
      if (text) {
        onLine(JSON.parse(text));
      }
    }
  }
}
