import type { IncidentReport } from './incident-report.js';
import { type Block, reportSections } from './report-sections.js';

/** Pipes and newlines would break a Markdown table cell. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function block(b: Block): string {
  switch (b.type) {
    case 'p':
      return b.text;
    case 'list':
      return b.items.map((i) => `- ${i}`).join('\n');
    case 'code':
      return `\`\`\`\n${b.text}\n\`\`\``;
    case 'table':
      return [
        `| ${b.head.map(cell).join(' | ')} |`,
        `|${b.head.map(() => '---').join('|')}|`,
        ...b.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
      ].join('\n');
  }
}

/** The report as Markdown (for a ticket or a post-mortem document). */
export function renderMarkdown(r: IncidentReport): string {
  const parts = [`# Incident report`, `Generated ${r.generatedAt} by \`hangproof report\`.`];
  for (const s of reportSections(r)) parts.push(`## ${s.title}`, ...s.blocks.map(block));
  return `${parts.join('\n\n')}\n`;
}
