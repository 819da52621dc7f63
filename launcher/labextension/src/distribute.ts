/**
 * The Run distributed dialog and the `%%distribute` line it writes at the top of a cell
 * (the flags of hubflow.launcher.magics).
 */
import { Widget } from '@lumino/widgets';

/** What the dialog asks for. */
export interface IDistributeOptions {
  workers: number;
  gpusPerWorker: number;
  push: string[];
  pull: string[];
  /** Flags of an existing line that the dialog does not show (kept as they were). */
  other: string[];
}

const DEFAULTS: IDistributeOptions = {
  workers: 2,
  gpusPerWorker: 0,
  push: [],
  pull: [],
  other: []
};

const MAGIC = '%%distribute';

type FieldKey = 'workers' | 'gpusPerWorker' | 'push' | 'pull';

/** A form field's problem, named by the field. */
export class FieldError extends Error {
  constructor(
    readonly field: FieldKey,
    message: string
  ) {
    super(message);
  }
}

function names(text: string): string[] {
  return text
    .split(',')
    .map(name => name.trim())
    .filter(Boolean);
}

/** The options of the cell's `%%distribute` line, or the defaults when it has none. */
export function parseDistributeLine(source: string): IDistributeOptions {
  const first = source.split('\n', 1)[0].trim();
  if (!first.startsWith(MAGIC + ' ') && first !== MAGIC) {
    return { ...DEFAULTS };
  }
  const options = { ...DEFAULTS, other: [] as string[] };
  const tokens = first.slice(MAGIC.length).trim().split(/\s+/).filter(Boolean);
  for (let i = 0; i < tokens.length; i++) {
    const [flag, inline] = tokens[i].split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : (tokens[++i] ?? ''));
    if (flag === '--workers' || flag === '-n') {
      options.workers = Number(value());
    } else if (flag === '--gpus-per-worker' || flag === '-g') {
      options.gpusPerWorker = Number(value());
    } else if (flag === '--push') {
      options.push = names(value());
    } else if (flag === '--pull') {
      options.pull = names(value());
    } else {
      options.other.push(tokens[i]);
    }
  }
  return options;
}

/** `%%distribute --workers 2 ...` for these options. */
export function distributeLine(options: IDistributeOptions): string {
  const parts = [MAGIC, '--workers', String(options.workers)];
  if (options.gpusPerWorker) {
    parts.push('--gpus-per-worker', String(options.gpusPerWorker));
  }
  if (options.push.length) {
    parts.push('--push', options.push.join(','));
  }
  if (options.pull.length) {
    parts.push('--pull', options.pull.join(','));
  }
  return [...parts, ...options.other].join(' ');
}

/** The cell's source with its `%%distribute` line set to these options. */
export function withDistributeLine(source: string, options: IDistributeOptions): string {
  const lines = source.split('\n');
  if (lines[0].trim().startsWith(MAGIC)) {
    lines.shift();
  }
  return [distributeLine(options), ...lines].join('\n');
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkCount(field: 'workers' | 'gpusPerWorker', text: string, minimum: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < minimum) {
    throw new FieldError(field, `must be a whole number ≥ ${minimum}`);
  }
  return value;
}

function checkNames(field: 'push' | 'pull', text: string): string[] {
  const list = names(text);
  const bad = list.find(name => !IDENTIFIER.test(name));
  if (bad !== undefined) {
    throw new FieldError(field, `“${bad}” is not a Python variable name`);
  }
  return list;
}

/** The form's fields as text, and the flags it does not show. */
export type FormText = Record<FieldKey, string> & { other: string[] };

/** The options as the form shows them. */
export function formText(options: IDistributeOptions): FormText {
  return {
    workers: String(options.workers),
    gpusPerWorker: String(options.gpusPerWorker),
    push: options.push.join(', '),
    pull: options.pull.join(', '),
    other: options.other
  };
}

/** The form's text as options; a FieldError names the first bad field. */
export function checkedOptions(text: FormText): IDistributeOptions {
  return {
    workers: checkCount('workers', text.workers, 1),
    gpusPerWorker: checkCount('gpusPerWorker', text.gpusPerWorker, 0),
    push: checkNames('push', text.push),
    pull: checkNames('pull', text.pull),
    other: text.other
  };
}

const FIELDS: { key: FieldKey; label: string; hint: string }[] = [
  { key: 'workers', label: 'Workers', hint: 'ranks that run the cell' },
  { key: 'gpusPerWorker', label: 'GPUs per worker', hint: '0 for CPU only' },
  { key: 'push', label: 'Variables to push', hint: 'comma-separated, besides those the cell uses' },
  { key: 'pull', label: 'Variables to pull', hint: 'comma-separated, brought back from rank 0' }
];

/** The dialog's body: one labelled input per option, and the error of the last try. */
export class DistributeForm extends Widget {
  private _inputs = new Map<FieldKey, HTMLInputElement>();
  private _other: string[];

  constructor(text: FormText, error?: FieldError) {
    super();
    this.addClass('hf-distribute-form');
    this._other = text.other;
    for (const field of FIELDS) {
      const id = `hf-distribute-${field.key}`;
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = field.label;
      const input = document.createElement('input');
      input.id = id;
      input.name = field.key;
      input.className = 'jp-mod-styled';
      input.value = text[field.key];
      if (field.key === 'workers' || field.key === 'gpusPerWorker') {
        input.type = 'number';
        input.min = field.key === 'workers' ? '1' : '0';
      }
      const hint = document.createElement('small');
      hint.textContent = field.hint;
      hint.id = `${id}-hint`;
      input.setAttribute('aria-describedby', hint.id);
      const row = document.createElement('div');
      row.className = 'hf-distribute-field';
      row.append(label, input, hint);
      if (error?.field === field.key) {
        const message = document.createElement('p');
        message.className = 'hf-distribute-error';
        message.id = `${id}-error`;
        message.setAttribute('role', 'alert');
        message.textContent = `${field.label}: ${error.message}`;
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', `${hint.id} ${message.id}`);
        row.append(message);
      }
      this.node.append(row);
      this._inputs.set(field.key, input);
    }
  }

  /** What was typed. */
  getValue(): FormText {
    const text = (key: FieldKey) => this._inputs.get(key)!.value;
    return {
      workers: text('workers'),
      gpusPerWorker: text('gpusPerWorker'),
      push: text('push'),
      pull: text('pull'),
      other: this._other
    };
  }
}
