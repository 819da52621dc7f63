"use strict";(self.rspackChunkhubflow_jobs=self.rspackChunkhubflow_jobs||[]).push([[700],{646(e,o,t){var r=t(601),n=t.n(r),a=t(314),i=(t.n(a))()(n());i.push([e.id,`/* hubflow jobs: the Jobs side panel and the Run distributed dialog. */

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

.hf-jobs-row {
  padding: 6px 4px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  cursor: pointer;
}

.hf-jobs-row:hover,
.hf-jobs-row:focus-visible {
  background: var(--jp-layout-color2);
}

.hf-jobs-row:focus-visible {
  outline: 2px solid var(--jp-brand-color1);
  outline-offset: -2px;
}

.hf-job-line {
  display: flex;
  align-items: center;
  gap: 8px;
}

.hf-job-facts {
  margin-top: 2px;
  color: var(--jp-ui-font-color2);
}

.hf-job-fact,
.hf-job-elapsed {
  white-space: nowrap;
}

.hf-job-state {
  margin-left: auto;
}

.hf-job-cancel {
  margin-left: auto;
  padding: 0 6px;
}

.hf-jobs-row.hf-mod-selected {
  background: var(--jp-brand-color3);
}

.hf-job-name {
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

.hf-state-failed {
  color: var(--jp-error-color1);
  font-weight: 600;
}

.hf-state-cancelled {
  color: var(--jp-warn-color1);
}

.hf-state-running,
.hf-state-pending,
.hf-state-queued {
  color: var(--jp-brand-color1);
}

.hf-jobs-detail {
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
`,""]),t.d(o,{},{A:i})},314(e){e.exports=function(e){var o=[];return o.toString=function(){return this.map(function(o){var t="",r=void 0!==o[5];return o[4]&&(t+="@supports (".concat(o[4],") {")),o[2]&&(t+="@media ".concat(o[2]," {")),r&&(t+="@layer".concat(o[5].length>0?" ".concat(o[5]):""," {")),t+=e(o),r&&(t+="}"),o[2]&&(t+="}"),o[4]&&(t+="}"),t}).join("")},o.i=function(e,t,r,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var i={};if(r)for(var s=0;s<this.length;s++){var c=this[s][0];null!=c&&(i[c]=!0)}for(var l=0;l<e.length;l++){var f=[].concat(e[l]);r&&i[f[0]]||(void 0!==a&&(void 0===f[5]||(f[1]="@layer".concat(f[5].length>0?" ".concat(f[5]):""," {").concat(f[1],"}")),f[5]=a),t&&(f[2]&&(f[1]="@media ".concat(f[2]," {").concat(f[1],"}")),f[2]=t),n&&(f[4]?(f[1]="@supports (".concat(f[4],") {").concat(f[1],"}"),f[4]=n):f[4]="".concat(n)),o.push(f))}},o}},601(e){e.exports=function(e){return e[1]}},72(e){var o=[];function t(e){for(var t=-1,r=0;r<o.length;r++)if(o[r].identifier===e){t=r;break}return t}function r(e,r){for(var n={},a=[],i=0;i<e.length;i++){var s=e[i],c=r.base?s[0]+r.base:s[0],l=n[c]||0,f="".concat(c," ").concat(l);n[c]=l+1;var p=t(f),u={css:s[1],media:s[2],sourceMap:s[3],supports:s[4],layer:s[5]};if(-1!==p)o[p].references++,o[p].updater(u);else{var d=function(e,o){var t=o.domAPI(o);return t.update(e),function(o){o?(o.css!==e.css||o.media!==e.media||o.sourceMap!==e.sourceMap||o.supports!==e.supports||o.layer!==e.layer)&&t.update(e=o):t.remove()}}(u,r);r.byIndex=i,o.splice(i,0,{identifier:f,updater:d,references:1})}a.push(f)}return a}e.exports=function(e,n){var a=r(e=e||[],n=n||{});return function(e){e=e||[];for(var i=0;i<a.length;i++){var s=t(a[i]);o[s].references--}for(var c=r(e,n),l=0;l<a.length;l++){var f=t(a[l]);0===o[f].references&&(o[f].updater(),o.splice(f,1))}a=c}}},659(e){var o={};e.exports=function(e,t){var r=function(e){if(void 0===o[e]){var t=document.querySelector(e);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(e){t=null}o[e]=t}return o[e]}(e);if(!r)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");r.appendChild(t)}},540(e){e.exports=function(e){var o=document.createElement("style");return e.setAttributes(o,e.attributes),e.insert(o,e.options),o}},56(e,o,t){e.exports=function(e){var o=t.nc;o&&e.setAttribute("nonce",o)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var o=e.insertStyleElement(e);return{update:function(t){var r,n,a;r="",t.supports&&(r+="@supports (".concat(t.supports,") {")),t.media&&(r+="@media ".concat(t.media," {")),(n=void 0!==t.layer)&&(r+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),r+=t.css,n&&(r+="}"),t.media&&(r+="}"),t.supports&&(r+="}"),(a=t.sourceMap)&&"u">typeof btoa&&(r+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(r,o,e.options)},remove:function(){var e;null===(e=o).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,o){if(o.styleSheet)o.styleSheet.cssText=e;else{for(;o.firstChild;)o.removeChild(o.firstChild);o.appendChild(document.createTextNode(e))}}},959(e,o,t){var r=t(72),n=t.n(r),a=t(825),i=t.n(a),s=t(659),c=t.n(s),l=t(56),f=t.n(l),p=t(540),u=t.n(p),d=t(113),h=t.n(d),v=t(646),m={};m.styleTagTransform=h(),m.setAttributes=f(),m.insert=c().bind(null,"head"),m.domAPI=i(),m.insertStyleElement=u(),n()(v.A,m),v.A&&v.A.locals&&v.A.locals}}]);