/** hangproof core: request context, deadlines, spans and the error catalogue (framework-agnostic). */
export * from './core/index.js';
export * from './errors.js';
export * from './log-events.js';
export type { StatusDocument } from './observe/status-document.js';
