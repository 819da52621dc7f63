/** The icons of the Jobs panel and the Run distributed button. */
import { LabIcon } from '@jupyterlab/ui-components';

/** Three stacked ranks: the Jobs panel's tab. */
export const jobsIcon = new LabIcon({
  name: 'hubflow:jobs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="1" y="2" width="14" height="3" rx="1"/>' +
    '<rect x="1" y="6.5" width="14" height="3" rx="1"/>' +
    '<rect x="1" y="11" width="14" height="3" rx="1"/></g></svg>'
});

/** A play sign fanning out to several ranks: the cell toolbar's Run distributed button. */
export const distributeIcon = new LabIcon({
  name: 'hubflow:distribute',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M1 2.5v11l7-5.5z"/>' +
    '<circle cx="12.5" cy="3.5" r="2"/><circle cx="12.5" cy="8" r="2"/>' +
    '<circle cx="12.5" cy="12.5" r="2"/></g></svg>'
});
