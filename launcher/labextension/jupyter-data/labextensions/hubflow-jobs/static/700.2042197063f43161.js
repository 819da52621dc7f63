"use strict";(self.rspackChunkhubflow_jobs=self.rspackChunkhubflow_jobs||[]).push([[700],{646(o,e,t){var r=t(601),a=t.n(r),n=t(314),i=(t.n(n))()(a());i.push([o.id,`/* hubflow jobs: the Jobs side panel (warm pools and jobs) and the Run distributed dialog. */

.hf-jobs-panel {
  display: flex;
  flex-direction: column;
  padding: 8px;
  overflow: auto;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

.hf-jobs-heading {
  margin: 0 0 8px;
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  text-transform: uppercase;
}

.hf-jobs-status:empty {
  display: none;
}

.hf-jobs-status {
  margin-bottom: 8px;
  color: var(--jp-ui-font-color2);
}

.hf-jobs-rows {
  list-style: none;
  margin: 0;
  padding: 0;
}

.hf-jobs-row,
.hf-pools-row {
  padding: 6px 4px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}

.hf-jobs-row {
  cursor: pointer;
}

.hf-jobs-row:hover,
.hf-jobs-row:focus-visible {
  background: var(--jp-layout-color2);
}

.hf-jobs-row:focus-visible,
.hf-pools-row:focus-visible {
  outline: 2px solid var(--jp-brand-color1);
  outline-offset: -2px;
}

.hf-job-line {
  display: flex;
  align-items: center;
  gap: 8px;
}

.hf-job-facts {
  flex-wrap: wrap;
  margin-top: 2px;
  color: var(--jp-ui-font-color2);
}

.hf-job-fact,
.hf-job-elapsed {
  white-space: nowrap;
}

.hf-job-state,
.hf-pool-state {
  margin-left: auto;
}

.hf-job-cancel,
.hf-pool-stop {
  margin-left: auto;
  padding: 0 6px;
}

.hf-pool-stop[aria-disabled='true'] {
  opacity: 0.6;
  cursor: progress;
}

.hf-jobs-row.hf-mod-selected {
  background: var(--jp-brand-color3);
}

.hf-job-name,
.hf-pool-name {
  min-width: 0;
  overflow: hidden;
  white-space: nowrap;
  text-overflow: ellipsis;
  font-family: var(--jp-code-font-family);
}

.hf-state-succeeded {
  color: var(--jp-success-color1);
  font-weight: 600;
}

.hf-state-failed,
.hf-state-broken {
  color: var(--jp-error-color1);
  font-weight: 600;
}

.hf-state-cancelled {
  color: var(--jp-warn-color1);
}

.hf-state-running,
.hf-state-pending,
.hf-state-queued,
.hf-state-starting,
.hf-state-busy {
  color: var(--jp-brand-color1);
}

.hf-state-idle {
  color: var(--jp-success-color1);
}

.hf-state-stopped {
  color: var(--jp-ui-font-color2);
}

.hf-pools {
  margin-bottom: 16px;
}

.hf-pool-reason {
  margin-top: 2px;
  color: var(--jp-ui-font-color2);
}

.hf-jobs-detail:not([hidden]) {
  margin-top: 12px;
  display: flex;
  flex-direction: column;
  min-height: 0;
}

.hf-jobs-detail-title {
  margin: 0;
  font-size: var(--jp-ui-font-size1);
  font-weight: 600;
}

.hf-jobs-detail-summary {
  margin: 4px 0;
  color: var(--jp-ui-font-color2);
}

.hf-jobs-ranks {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
  margin-bottom: 4px;
}

.hf-jobs-rank.hf-mod-selected {
  background: var(--jp-brand-color1);
  color: var(--jp-ui-inverse-font-color1);
}

.hf-jobs-log {
  margin: 0;
  padding: 6px;
  min-height: 6em;
  max-height: 24em;
  overflow: auto;
  background: var(--jp-layout-color2);
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  white-space: pre-wrap;
}

.hf-distribute-form {
  display: flex;
  flex-direction: column;
  gap: 10px;
  min-width: 320px;
}

.hf-distribute-field {
  display: flex;
  flex-direction: column;
  gap: 2px;
}

.hf-distribute-field label {
  font-weight: 600;
}

.hf-distribute-field small {
  color: var(--jp-ui-font-color2);
}

.hf-distribute-error {
  margin: 0;
  color: var(--jp-error-color1);
}
`,""]),t.d(e,{},{A:i})},314(o){o.exports=function(o){var e=[];return e.toString=function(){return this.map(function(e){var t="",r=void 0!==e[5];return e[4]&&(t+="@supports (".concat(e[4],") {")),e[2]&&(t+="@media ".concat(e[2]," {")),r&&(t+="@layer".concat(e[5].length>0?" ".concat(e[5]):""," {")),t+=o(e),r&&(t+="}"),e[2]&&(t+="}"),e[4]&&(t+="}"),t}).join("")},e.i=function(o,t,r,a,n){"string"==typeof o&&(o=[[null,o,void 0]]);var i={};if(r)for(var s=0;s<this.length;s++){var l=this[s][0];null!=l&&(i[l]=!0)}for(var c=0;c<o.length;c++){var f=[].concat(o[c]);r&&i[f[0]]||(void 0!==n&&(void 0===f[5]||(f[1]="@layer".concat(f[5].length>0?" ".concat(f[5]):""," {").concat(f[1],"}")),f[5]=n),t&&(f[2]&&(f[1]="@media ".concat(f[2]," {").concat(f[1],"}")),f[2]=t),a&&(f[4]?(f[1]="@supports (".concat(f[4],") {").concat(f[1],"}"),f[4]=a):f[4]="".concat(a)),e.push(f))}},e}},601(o){o.exports=function(o){return o[1]}},72(o){var e=[];function t(o){for(var t=-1,r=0;r<e.length;r++)if(e[r].identifier===o){t=r;break}return t}function r(o,r){for(var a={},n=[],i=0;i<o.length;i++){var s=o[i],l=r.base?s[0]+r.base:s[0],c=a[l]||0,f="".concat(l," ").concat(c);a[l]=c+1;var p=t(f),u={css:s[1],media:s[2],sourceMap:s[3],supports:s[4],layer:s[5]};if(-1!==p)e[p].references++,e[p].updater(u);else{var d=function(o,e){var t=e.domAPI(e);return t.update(o),function(e){e?(e.css!==o.css||e.media!==o.media||e.sourceMap!==o.sourceMap||e.supports!==o.supports||e.layer!==o.layer)&&t.update(o=e):t.remove()}}(u,r);r.byIndex=i,e.splice(i,0,{identifier:f,updater:d,references:1})}n.push(f)}return n}o.exports=function(o,a){var n=r(o=o||[],a=a||{});return function(o){o=o||[];for(var i=0;i<n.length;i++){var s=t(n[i]);e[s].references--}for(var l=r(o,a),c=0;c<n.length;c++){var f=t(n[c]);0===e[f].references&&(e[f].updater(),e.splice(f,1))}n=l}}},659(o){var e={};o.exports=function(o,t){var r=function(o){if(void 0===e[o]){var t=document.querySelector(o);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(o){t=null}e[o]=t}return e[o]}(o);if(!r)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");r.appendChild(t)}},540(o){o.exports=function(o){var e=document.createElement("style");return o.setAttributes(e,o.attributes),o.insert(e,o.options),e}},56(o,e,t){o.exports=function(o){var e=t.nc;e&&o.setAttribute("nonce",e)}},825(o){o.exports=function(o){if("u"<typeof document)return{update:function(){},remove:function(){}};var e=o.insertStyleElement(o);return{update:function(t){var r,a,n;r="",t.supports&&(r+="@supports (".concat(t.supports,") {")),t.media&&(r+="@media ".concat(t.media," {")),(a=void 0!==t.layer)&&(r+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),r+=t.css,a&&(r+="}"),t.media&&(r+="}"),t.supports&&(r+="}"),(n=t.sourceMap)&&"u">typeof btoa&&(r+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),o.styleTagTransform(r,e,o.options)},remove:function(){var o;null===(o=e).parentNode||o.parentNode.removeChild(o)}}}},113(o){o.exports=function(o,e){if(e.styleSheet)e.styleSheet.cssText=o;else{for(;e.firstChild;)e.removeChild(e.firstChild);e.appendChild(document.createTextNode(o))}}},959(o,e,t){var r=t(72),a=t.n(r),n=t(825),i=t.n(n),s=t(659),l=t.n(s),c=t(56),f=t.n(c),p=t(540),u=t.n(p),d=t(113),h=t.n(d),m=t(646),v={};v.styleTagTransform=h(),v.setAttributes=f(),v.insert=l().bind(null,"head"),v.domAPI=i(),v.insertStyleElement=u(),a()(m.A,v),m.A&&m.A.locals&&m.A.locals}}]);