/**
 * The Jobs side panel: the user's jobs (state, workers, GPUs, elapsed time), the selected job's
 * live log per rank, and cancel.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { cancelJob, FINISHED, followLog, IJob } from './api';
import { jobsIcon } from './icons';
import { JobWatcher } from './watcher';

/** '3.0s', '2m03s', '1h02m03s' (as the launcher prints them). */
export function formatDuration(seconds: number): string {
  seconds = Math.max(0, seconds);
  if (seconds < 60) {
    return `${seconds.toFixed(1)}s`;
  }
  const whole = Math.floor(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}h${pad(m)}m${pad(s)}s` : `${m}m${pad(s)}s`;
}

function elapsed(job: IJob): number {
  const end = job.finished ? Date.parse(job.finished) : Date.now();
  return (end - Date.parse(job.created)) / 1000;
}

/** 'name (id)' or the id alone. */
export function jobLabel(job: IJob): string {
  return job.name ? `${job.name} (${job.id})` : job.id;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export class JobsPanel extends Widget {
  private _status = element('div', 'hf-jobs-status');
  private _rows = element('ul', 'hf-jobs-rows');
  private _detail = element('section', 'hf-jobs-detail');
  private _title = element('h3', 'hf-jobs-detail-title');
  private _summary = element('p', 'hf-jobs-detail-summary');
  private _ranks = element('div', 'hf-jobs-ranks');
  private _log = element('pre', 'hf-jobs-log');
  private _selected: string | null = null;
  private _rank = 0;
  private _stream: AbortController | null = null;

  constructor(private watcher: JobWatcher) {
    super();
    this.id = 'hubflow-jobs-panel';
    this.addClass('hf-jobs-panel');
    this.title.icon = jobsIcon;
    this.title.caption = 'Jobs';
    this._log.setAttribute('aria-live', 'polite');
    this._log.setAttribute('aria-label', 'Log');
    this._rows.setAttribute('aria-label', 'Your jobs');
    this._detail.append(this._title, this._summary, this._ranks, this._log);
    this._detail.hidden = true;
    this.node.append(
      element('h2', 'hf-jobs-heading', 'Jobs'),
      this._status,
      this._rows,
      this._detail
    );
    watcher.changed.connect(this.render, this);
    watcher.stateChanged.connect((_, { job, previous }) => {
      if (previous === undefined) {
        this.select(job.id); // a job just submitted: show it
      }
    });
  }

  /** Show a job's log (rank 0 first). */
  select(id: string, rank = 0): void {
    if (this._selected === id && this._rank === rank) {
      return;
    }
    this._selected = id;
    this._rank = rank;
    this.render();
    this.follow();
  }

  dispose(): void {
    this._stream?.abort();
    super.dispose();
  }

  private render(): void {
    const jobs = this.watcher.jobs;
    this._status.textContent = this.watcher.error
      ? `Cannot read jobs: ${this.watcher.error}`
      : jobs.length
        ? ''
        : 'No jobs yet. Run a cell with “Run distributed” or %%distribute.';
    this._rows.replaceChildren(...jobs.map(job => this.row(job)));
    const job = jobs.find(j => j.id === this._selected);
    this._detail.hidden = !job;
    if (job) {
      this.renderDetail(job);
    }
  }

  /** A job as two lines: name and state; workers, GPUs, elapsed time and Cancel. */
  private row(job: IJob): HTMLLIElement {
    const row = element('li', 'hf-jobs-row');
    row.dataset.jobId = job.id;
    row.dataset.state = job.state;
    row.tabIndex = 0;
    const selected = job.id === this._selected;
    row.classList.toggle('hf-mod-selected', selected);
    if (selected) {
      row.setAttribute('aria-current', 'true');
    }
    const title = row.appendChild(element('div', 'hf-job-line'));
    title.append(
      element('span', 'hf-job-name', jobLabel(job)),
      element('span', `hf-job-state hf-state-${job.state.toLowerCase()}`, job.state)
    );
    const facts = row.appendChild(element('div', 'hf-job-line hf-job-facts'));
    const fact = (className: string, value: string, unit: string) => {
      const span = element('span', 'hf-job-fact');
      span.append(element('span', className, value), ` ${unit}`);
      return span;
    };
    facts.append(
      fact('hf-job-workers', String(job.workers), job.workers === 1 ? 'worker' : 'workers'),
      fact('hf-job-gpus', String(job.workers * job.gpus_per_worker), 'GPUs'),
      element('span', 'hf-job-elapsed', formatDuration(elapsed(job)))
    );
    if (!FINISHED.has(job.state)) {
      const cancel = facts.appendChild(element('button', 'jp-mod-styled hf-job-cancel', 'Cancel'));
      cancel.title = `Cancel job ${job.id}`;
      cancel.addEventListener('click', event => {
        event.stopPropagation();
        void this.cancel(job);
      });
    }
    row.addEventListener('click', () => this.select(job.id));
    row.addEventListener('keydown', event => {
      if (event.target === row && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        this.select(job.id);
      }
    });
    return row;
  }

  private renderDetail(job: IJob): void {
    this._title.textContent = `Job ${jobLabel(job)}`;
    const parts: string[] = [job.state];
    if (job.reason && !FINISHED.has(job.state)) {
      parts.push(job.reason);
    }
    if (job.state === 'Failed' && job.failing_rank !== null) {
      parts.push(`rank ${job.failing_rank} failed`);
    }
    if (job.error?.message) {
      parts.push(job.error.message);
    }
    this._summary.textContent = parts.join(' · ');
    if (this._ranks.childElementCount !== job.workers) {
      this._ranks.replaceChildren(
        ...Array.from({ length: job.workers }, (_, rank) => {
          const tab = element('button', 'jp-mod-styled hf-jobs-rank', `rank ${rank}`);
          tab.dataset.rank = String(rank);
          tab.addEventListener('click', () => this.select(job.id, rank));
          return tab;
        })
      );
    }
    for (const tab of Array.from(this._ranks.children) as HTMLElement[]) {
      const current = Number(tab.dataset.rank) === this._rank;
      tab.classList.toggle('hf-mod-selected', current);
      tab.setAttribute('aria-pressed', String(current));
    }
  }

  /** Stream the selected rank's log into the log view, replacing what it showed. */
  private follow(): void {
    this._stream?.abort();
    const stream = new AbortController();
    this._stream = stream;
    this._log.textContent = '';
    this._log.dataset.rank = String(this._rank);
    followLog(
      this._selected!,
      this._rank,
      0,
      ({ line }) => {
        this._log.textContent += line + '\n';
        this._log.scrollTop = this._log.scrollHeight;
      },
      stream.signal
    ).catch(error => {
      if (!stream.signal.aborted) {
        this._log.textContent += `[log stream stopped: ${(error as Error).message}]\n`;
      }
    });
  }

  private async cancel(job: IJob): Promise<void> {
    try {
      await cancelJob(job.id);
    } catch (error) {
      Notification.error(`Cannot cancel job ${jobLabel(job)}: ${(error as Error).message}`);
    }
    await this.watcher.refresh();
  }
}
