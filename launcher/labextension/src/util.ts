/** Small helpers shared by the panel, its rows and the notifications. */
import { IJob } from './api';

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

/** Seconds from submission to the end (or to now while the job is under way). */
export function elapsed(job: IJob): number {
  const end = job.finished ? Date.parse(job.finished) : Date.now();
  return (end - Date.parse(job.created)) / 1000;
}

/** 'name (id)' or the id alone. */
export function jobLabel(job: IJob): string {
  return job.name ? `${job.name} (${job.id})` : job.id;
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
