/**
 * hubflow in JupyterLab: the Jobs side panel, job state notifications, and the cell toolbar's
 * "Run distributed" button (hubflow:run-distributed, placed by schema/plugin.json).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import {
  checkedOptions,
  DistributeForm,
  FieldError,
  formText,
  IDistributeOptions,
  parseDistributeLine,
  withDistributeLine
} from './distribute';
import { distributeIcon } from './icons';
import { notifyStateChange } from './notify';
import { JobsPanel } from './panel';
import { listJobs, listPools } from './api';
import { ListWatcher } from './watcher';

const RUN_DISTRIBUTED = 'hubflow:run-distributed';
const SHOW_JOBS = 'hubflow:show-jobs';

/** Ask for the options until they are valid; null when the user cancels. */
async function askOptions(source: string): Promise<IDistributeOptions | null> {
  let text = formText(parseDistributeLine(source));
  let error: FieldError | undefined;
  for (;;) {
    const result = await showDialog({
      title: 'Run distributed',
      body: new DistributeForm(text, error),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: error ? `#hf-distribute-${error.field}` : 'input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    try {
      return checkedOptions(result.value);
    } catch (e) {
      if (!(e instanceof FieldError)) {
        throw e;
      }
      [text, error] = [result.value, e];
    }
  }
}

/** Set the active cell's %%distribute line from the dialog, then run the cell. */
async function runDistributed(notebook: NotebookPanel, showJobs: () => void): Promise<void> {
  const cell = notebook.content.activeCell;
  if (!cell || cell.model.type !== 'code') {
    return;
  }
  const options = await askOptions(cell.model.sharedModel.getSource());
  if (!options) {
    return;
  }
  cell.model.sharedModel.setSource(withDistributeLine(cell.model.sharedModel.getSource(), options));
  showJobs();
  await NotebookActions.run(notebook.content, notebook.sessionContext);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'hubflow-jobs:plugin',
  description: 'hubflow jobs: the Jobs panel, notifications and the Run distributed button.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const watcher = new ListWatcher(listJobs);
    const pools = new ListWatcher(listPools);
    const panel = new JobsPanel(watcher, pools);
    app.shell.add(panel, 'left', { rank: 250 });
    restorer?.add(panel, panel.id);
    const show = (id?: string) => {
      app.shell.activateById(panel.id);
      if (id) {
        panel.select(id);
      }
    };
    watcher.stateChanged.connect((_, change) => notifyStateChange(change, show));
    watcher.start();
    pools.start();

    app.commands.addCommand(SHOW_JOBS, {
      label: 'Show Jobs',
      caption: 'Your distributed jobs',
      execute: () => show()
    });
    app.commands.addCommand(RUN_DISTRIBUTED, {
      label: 'Run distributed',
      caption: 'Run this cell as a distributed job (%%distribute)',
      icon: distributeIcon,
      isEnabled: () => notebooks.currentWidget?.content.activeCell?.model.type === 'code',
      execute: () => {
        const notebook = notebooks.currentWidget;
        return notebook ? runDistributed(notebook, show) : undefined;
      }
    });
    for (const command of [SHOW_JOBS, RUN_DISTRIBUTED]) {
      palette?.addItem({ command, category: 'hubflow' });
    }
  }
};

export default plugin;
