/**
 * The Jobs side panel: the user's warm pools (pools.ts), then their jobs (state, workers, GPUs,
 * elapsed time), the selected job's live log per rank, and cancel.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { cancelJob, FINISHED, followLog, IJob, IPool } from './api';
import { jobsIcon } from './icons';
import { PoolsSection } from './pools';
import { JobRow } from './row';
import { element, label, renderRows } from './util';
import { ListWatcher } from './watcher';

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
  private _jobRows = new Map<string, JobRow>();

  constructor(
    private watcher: ListWatcher<IJob>,
    pools: ListWatcher<IPool>
  ) {
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
      new PoolsSection(pools).node,
      element('h2', 'hf-jobs-heading', 'Jobs'),
      this._status,
      this._rows,
      this._detail
    );
    watcher.changed.connect(this.render, this);
    watcher.stateChanged.connect((_, { item: job, previous }) => {
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
    const jobs = this.watcher.items;
    this._status.textContent = this.watcher.error
      ? `Cannot read jobs: ${this.watcher.error}`
      : jobs.length
        ? ''
        : 'No jobs yet. Run a cell with “Run distributed” or %%distribute.';
    renderRows(
      this._rows,
      jobs,
      this._jobRows,
      job =>
        new JobRow(
          job.id,
          id => this.select(id),
          () => void this.cancel(job)
        ),
      (row, job) => row.update(job, job.id === this._selected)
    );
    const job = jobs.find(j => j.id === this._selected);
    this._detail.hidden = !job;
    if (job) {
      this.renderDetail(job);
    }
  }

  private renderDetail(job: IJob): void {
    this._title.textContent = `Job ${label(job)}`;
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
          tab.addEventListener('click', () => this.select(this._selected!, rank));
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
      Notification.error(`Cannot cancel job ${label(job)}: ${(error as Error).message}`);
    }
    await this.watcher.refresh();
  }
}
