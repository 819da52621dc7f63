/**
 * Keeps the user's job list fresh and tells who listens when a job appears or changes state.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IJob, JobState, listJobs } from './api';

/** How often the job list is read. */
const POLL_MS = 1500;

/** A job seen in a new state; `previous` is undefined for a job seen for the first time. */
export interface IStateChange {
  job: IJob;
  previous: JobState | undefined;
}

/** The user's jobs, read every POLL_MS while the page is open. */
export class JobWatcher {
  private _jobs: IJob[] = [];
  private _states = new Map<string, JobState>();
  private _loaded = false;
  private _timer = 0;
  private _error = '';
  private _changed = new Signal<this, IJob[]>(this);
  private _stateChanged = new Signal<this, IStateChange>(this);

  /** The jobs as last read, newest first. */
  get jobs(): IJob[] {
    return this._jobs;
  }

  /** Why the last read failed ('' when it did not). */
  get error(): string {
    return this._error;
  }

  /** Emitted after every read (and failed read). */
  get changed(): ISignal<this, IJob[]> {
    return this._changed;
  }

  /**
   * Emitted for each job whose state differs from the last read; jobs that already existed
   * when the watcher started are not reported.
   */
  get stateChanged(): ISignal<this, IStateChange> {
    return this._stateChanged;
  }

  /** Read the job list now and every POLL_MS from now on. */
  start(): void {
    if (!this._timer) {
      void this.refresh();
      this._timer = window.setInterval(() => void this.refresh(), POLL_MS);
    }
  }

  /** Read the job list now. */
  async refresh(): Promise<void> {
    try {
      this._jobs = await listJobs();
      this._error = '';
    } catch (e) {
      this._error = (e as Error).message;
      this._changed.emit(this._jobs);
      return;
    }
    for (const job of this._jobs) {
      const previous = this._states.get(job.id);
      if (previous !== job.state) {
        this._states.set(job.id, job.state);
        if (this._loaded) {
          this._stateChanged.emit({ job, previous });
        }
      }
    }
    this._loaded = true;
    this._changed.emit(this._jobs);
  }
}
