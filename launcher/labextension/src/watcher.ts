/**
 * Keeps a list of the user's jobs or warm pools fresh and tells who listens when one appears or
 * changes state.
 */
import { ISignal, Signal } from '@lumino/signaling';

/** How often a list is read. */
const POLL_MS = 1500;

/** What a watched list holds: jobs or pools, each with an id and a state. */
export interface IWatched {
  id: string;
  state: string;
}

/** An item seen in a new state; `previous` is undefined for one seen for the first time. */
export interface IStateChange<T extends IWatched> {
  item: T;
  previous: T['state'] | undefined;
}

/** A list of the user's jobs or pools, read every POLL_MS while the page is open. */
export class ListWatcher<T extends IWatched> {
  private _items: T[] = [];
  private _states = new Map<string, T['state']>();
  private _loaded = false;
  private _timer = 0;
  private _error = '';
  private _changed = new Signal<this, T[]>(this);
  private _stateChanged = new Signal<this, IStateChange<T>>(this);

  /** @param read - reads the list (newest first). */
  constructor(private read: () => Promise<T[]>) {}

  /** The items as last read, newest first. */
  get items(): T[] {
    return this._items;
  }

  /** Why the last read failed ('' when it did not). */
  get error(): string {
    return this._error;
  }

  /** Emitted after every read (and failed read). */
  get changed(): ISignal<this, T[]> {
    return this._changed;
  }

  /**
   * Emitted for each item whose state differs from the last read; items that already existed
   * when the watcher started are not reported.
   */
  get stateChanged(): ISignal<this, IStateChange<T>> {
    return this._stateChanged;
  }

  /** Read the list now and every POLL_MS from now on. */
  start(): void {
    if (!this._timer) {
      void this.refresh();
      this._timer = window.setInterval(() => void this.refresh(), POLL_MS);
    }
  }

  /** Read the list now. */
  async refresh(): Promise<void> {
    try {
      this._items = await this.read();
      this._error = '';
    } catch (e) {
      this._error = (e as Error).message;
      this._changed.emit(this._items);
      return;
    }
    for (const item of this._items) {
      const previous = this._states.get(item.id);
      if (previous !== item.state) {
        this._states.set(item.id, item.state);
        if (this._loaded) {
          this._stateChanged.emit({ item, previous });
        }
      }
    }
    this._loaded = true;
    this._changed.emit(this._items);
  }
}
