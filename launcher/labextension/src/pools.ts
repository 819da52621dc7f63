/**
 * The Jobs panel's "Warm pools" section: the user's pools (state, and why one stopped or broke;
 * workers, GPUs, age, idle time) and a Stop button for each live one.
 */
import { Notification } from '@jupyterlab/apputils';

import { IPool, POOL_ENDED, stopPool } from './api';
import { element, elapsed, formatDuration, label, renderRows } from './util';
import { ListWatcher } from './watcher';

/** One pool: name and state, why it ended, its facts and Stop. */
export class PoolRow {
  readonly node = element('li', 'hf-pools-row');
  private _name = element('span', 'hf-pool-name');
  private _state = element('span', 'hf-pool-state');
  private _reason = element('div', 'hf-pool-reason');
  private _workers = element('span', 'hf-job-fact hf-pool-workers');
  private _gpus = element('span', 'hf-job-fact hf-pool-gpus');
  private _age = element('span', 'hf-job-fact hf-pool-age');
  private _idle = element('span', 'hf-job-fact hf-pool-idle');
  private _stop = element('button', 'jp-mod-styled hf-pool-stop', 'Stop');
  private _stopping = false;

  constructor(pool: IPool, onStop: () => void) {
    this.node.dataset.poolId = pool.id;
    this.node.tabIndex = -1; // takes the focus when its Stop button goes
    this._stop.type = 'button';
    const title = element('div', 'hf-job-line');
    title.append(this._name, this._state);
    const facts = element('div', 'hf-job-line hf-job-facts');
    facts.append(this._workers, this._gpus, this._age, this._idle, this._stop);
    this.node.append(title, this._reason, facts);
    this._stop.addEventListener('click', () => {
      if (!this._stopping) {
        onStop();
      }
    });
  }

  /** Show the pool as it is now. */
  update(pool: IPool): void {
    const ended = POOL_ENDED.has(pool.state);
    this.node.dataset.state = pool.state;
    this._name.textContent = label(pool);
    this._state.textContent = pool.state;
    this._state.className = `hf-pool-state hf-state-${pool.state.toLowerCase()}`;
    this._reason.textContent = pool.reason;
    this._reason.hidden = !pool.reason;
    this._workers.textContent = `${pool.workers} ${pool.workers === 1 ? 'worker' : 'workers'}`;
    const gpus = pool.workers * pool.gpus_per_worker;
    this._gpus.textContent = `${gpus} ${gpus === 1 ? 'GPU' : 'GPUs'}`;
    this._age.textContent = `age ${formatDuration(elapsed(pool))}`;
    this._age.hidden = ended; // the model says when a pool started, not when it ended
    this._idle.textContent =
      `idle ${formatDuration(pool.idle_s)}` +
      (pool.idle_timeout ? ` of ${formatDuration(pool.idle_timeout)}` : '');
    this._idle.title = pool.idle_timeout
      ? `Stopped after ${formatDuration(pool.idle_timeout)} without a cell`
      : '';
    this._idle.hidden = pool.state !== 'Idle';
    this._stop.setAttribute('aria-label', `Stop pool ${label(pool)}`);
    this._stop.title = 'Stop the pool: its ranks end and what they hold is lost';
    if (ended && this._stop.contains(document.activeElement)) {
      this.node.focus();
    }
    this._stop.hidden = ended;
    this.setStopping(this._stopping && !ended);
  }

  /**
   * Show that a stop is under way; the button does nothing meanwhile (aria-disabled, not
   * disabled: a disabled button would drop the keyboard focus).
   */
  setStopping(stopping: boolean): void {
    this._stopping = stopping;
    this._stop.setAttribute('aria-disabled', String(stopping));
    this._stop.textContent = stopping ? 'Stopping…' : 'Stop';
  }
}

/** The section: a heading, a status line, the pools, newest first. */
export class PoolsSection {
  readonly node = element('section', 'hf-pools');
  private _status = element('div', 'hf-jobs-status');
  private _rows = element('ul', 'hf-jobs-rows hf-pools-rows');
  private _poolRows = new Map<string, PoolRow>();

  constructor(private watcher: ListWatcher<IPool>) {
    const heading = element('h2', 'hf-jobs-heading', 'Warm pools');
    heading.id = 'hf-pools-heading';
    this.node.setAttribute('aria-labelledby', heading.id);
    this._rows.setAttribute('aria-label', 'Your warm pools');
    this.node.append(heading, this._status, this._rows);
    watcher.changed.connect(this.render, this);
  }

  private render(): void {
    const pools = this.watcher.items;
    this._status.textContent = this.watcher.error
      ? `Cannot read warm pools: ${this.watcher.error}`
      : pools.length
        ? ''
        : 'None. %%distribute --warm starts one: its workers keep their state between cells.';
    renderRows(
      this._rows,
      pools,
      this._poolRows,
      pool => new PoolRow(pool, () => void this.stop(pool)),
      (row, pool) => row.update(pool)
    );
  }

  private async stop(pool: IPool): Promise<void> {
    const row = this._poolRows.get(pool.id)!;
    row.setStopping(true);
    try {
      await stopPool(pool.id);
    } catch (error) {
      row.setStopping(false);
      Notification.error(`Cannot stop pool ${label(pool)}: ${(error as Error).message}`);
    }
    await this.watcher.refresh();
  }
}
