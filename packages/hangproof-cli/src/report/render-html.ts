import type { IncidentReport } from './incident-report.js';
import { type Block, reportSections } from './report-sections.js';

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function block(b: Block): string {
  switch (b.type) {
    case 'p':
      return `<p>${esc(b.text)}</p>`;
    case 'list':
      return `<ul>${b.items.map((i) => `<li>${esc(i)}</li>`).join('')}</ul>`;
    case 'code':
      return `<pre>${esc(b.text)}</pre>`;
    case 'table':
      return `<table><thead><tr>${b.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${b.rows
        .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
        .join('')}</tbody></table>`;
  }
}

/** Inline only: the page must open from a mail attachment or an air-gapped laptop. */
const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}pre{background:#f6f8fa;padding:.6rem;overflow:auto}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}th,pre{background:#161b22}td,th{border-color:#30363d}tr:nth-child(even) td{background:#11161d}}`;

/** The report as one self-contained HTML page (no script, no external asset). */
export function renderHtml(r: IncidentReport): string {
  const body = reportSections(r)
    .map((s) => `<section><h2>${esc(s.title)}</h2>${s.blocks.map(block).join('\n')}</section>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Incident report ${esc(r.window.from ?? '')}</title><style>${STYLE}</style></head>
<body><h1>Incident report</h1><p>Generated ${esc(r.generatedAt)} by <code>hangproof report</code>.</p>
${body}
</body></html>
`;
}
