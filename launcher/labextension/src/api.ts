/**
 * The jobs API as the browser reaches it: through this server's `/hubflow/api/jobs` and
 * `/hubflow/api/pools` (the server extension `hubflow.launcher.serverext`), which adds the
 * server's own token. Of the pools, the browser can only list and stop them: a pool's key,
 * which runs cells on its ranks, stays with the kernel that started it.
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

/** A warm pool as the jobs API describes it (the fields the panel shows). */
export interface IPool {
  id: string;
  name: string;
  state: PoolState;
  /** Why it stopped or broke ('' while it lives). */
  reason: string;
  workers: number;
  gpus_per_worker: number;
  created: string;
  /** Seconds since its last cell ended (0 unless Idle). */
  idle_s: number;
  /** Seconds without a cell after which the pool is stopped (0: never). */
  idle_timeout: number;
  /** When an idle pool will be released (null: busy, ended, or never). */
  releases_at: string | null;
  cells: number;
}

export type PoolState = 'Starting' | 'Idle' | 'Busy' | 'Stopped' | 'Broken';

/** The states a pool never leaves. */
export const POOL_ENDED: ReadonlySet<PoolState> = new Set(['Stopped', 'Broken']);

/** One line a rank printed. */
export interface ILogLine {
  rank: number;
  offset: number;
  line: string;
}

const settings = ServerConnection.makeSettings();

function apiUrl(api: 'jobs' | 'pools', ...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'hubflow/api', api, ...parts);
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
  const jobs: IJob[] = (await (await call(apiUrl('jobs'))).json()).jobs;
  return jobs.sort((a, b) => b.created.localeCompare(a.created));
}

/** Cancel a job; its new model. */
export async function cancelJob(id: string): Promise<IJob> {
  return (await call(apiUrl('jobs', id, 'cancel'), { method: 'POST' })).json();
}

/** The user's warm pools, newest first. */
export async function listPools(): Promise<IPool[]> {
  const pools: IPool[] = (await (await call(apiUrl('pools'))).json()).pools;
  return pools.sort((a, b) => b.created.localeCompare(a.created));
}

/** Stop a warm pool (its ranks and what they hold); its new model. */
export async function stopPool(id: string): Promise<IPool> {
  return (await call(apiUrl('pools', id), { method: 'DELETE' })).json();
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
  const response = await call(apiUrl('jobs', id, 'logs') + query, { signal });
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
