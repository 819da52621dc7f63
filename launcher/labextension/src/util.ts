/** Small helpers shared by the panel, its rows and the notifications. */

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

/** Seconds from creation to the end (or to now while it lasts): a job's elapsed time, a pool's age. */
export function elapsed(item: { created: string; finished?: string | null }): number {
  const end = item.finished ? Date.parse(item.finished) : Date.now();
  return (end - Date.parse(item.created)) / 1000;
}

/** 'name (id)' or the id alone, for a job or a pool. */
export function label(item: { id: string; name: string }): string {
  return item.name ? `${item.name} (${item.id})` : item.id;
}

/** A new element with a class and text. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/**
 * Show one row per item in `list`, in the items' order: a row is made once per id and then
 * updated in place (so a focused row keeps its focus); the list is reordered only when needed.
 */
export function renderRows<T extends { id: string }, R extends { node: HTMLElement }>(
  list: HTMLElement,
  items: T[],
  rows: Map<string, R>,
  make: (item: T) => R,
  update: (row: R, item: T) => void
): void {
  const nodes = items.map(item => {
    let row = rows.get(item.id);
    if (!row) {
      row = make(item);
      rows.set(item.id, row);
    }
    update(row, item);
    return row.node;
  });
  const shown = Array.from(list.children);
  if (shown.length !== nodes.length || nodes.some((node, i) => shown[i] !== node)) {
    list.replaceChildren(...nodes);
  }
}
