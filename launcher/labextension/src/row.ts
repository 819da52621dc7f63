/** One job in the Jobs panel: name and state; workers, GPUs, elapsed time and Cancel. */
import { FINISHED, IJob } from './api';
import { element, elapsed, formatDuration, label } from './util';

export class JobRow {
  readonly node = element('li', 'hf-jobs-row');
  private _name = element('span', 'hf-job-name');
  private _state = element('span', 'hf-job-state');
  private _workers = element('span', 'hf-job-workers');
  private _workersUnit = document.createTextNode('');
  private _gpus = element('span', 'hf-job-gpus');
  private _elapsed = element('span', 'hf-job-elapsed');
  private _cancel = element('button', 'jp-mod-styled hf-job-cancel', 'Cancel');

  constructor(id: string, onSelect: (id: string) => void, onCancel: () => void) {
    this.node.dataset.jobId = id;
    this.node.tabIndex = 0;
    this._cancel.title = `Cancel job ${id}`;
    const title = element('div', 'hf-job-line');
    title.append(this._name, this._state);
    const workers = element('span', 'hf-job-fact');
    workers.append(this._workers, this._workersUnit);
    const gpus = element('span', 'hf-job-fact');
    gpus.append(this._gpus, ' GPUs');
    const facts = element('div', 'hf-job-line hf-job-facts');
    facts.append(workers, gpus, this._elapsed, this._cancel);
    this.node.append(title, facts);
    this._cancel.addEventListener('click', event => {
      event.stopPropagation();
      onCancel();
    });
    this.node.addEventListener('click', () => onSelect(id));
    this.node.addEventListener('keydown', event => {
      if (event.target === this.node && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        onSelect(id);
      }
    });
  }

  /** Show the job as it is now. */
  update(job: IJob, selected: boolean): void {
    this.node.dataset.state = job.state;
    this.node.classList.toggle('hf-mod-selected', selected);
    if (selected) {
      this.node.setAttribute('aria-current', 'true');
    } else {
      this.node.removeAttribute('aria-current');
    }
    this._name.textContent = label(job);
    this._state.textContent = job.state;
    this._state.className = `hf-job-state hf-state-${job.state.toLowerCase()}`;
    this._workers.textContent = String(job.workers);
    this._workersUnit.textContent = job.workers === 1 ? ' worker' : ' workers';
    this._gpus.textContent = String(job.workers * job.gpus_per_worker);
    this._elapsed.textContent = formatDuration(elapsed(job));
    this._cancel.hidden = FINISHED.has(job.state);
  }
}
