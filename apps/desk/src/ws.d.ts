/**
 * The part of `ws` the desk uses (its stream and its tests). The package ships no types and
 * @types/ws is not installed; @fastify/websocket's types refer to these names.
 */
declare module 'ws' {
  export interface ServerOptions {
    maxPayload?: number;
  }
  export class Server {
    readonly clients: Set<WebSocket>;
  }
  export class WebSocket {
    constructor(url: string);
    readonly OPEN: number;
    readonly readyState: number;
    readonly bufferedAmount: number;
    send(data: string): void;
    ping(): void;
    on(event: 'message', listener: (data: Buffer) => void): this;
    on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
    on(event: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number }) => void): this;
    on(event: 'open' | 'error' | 'pong', listener: (...args: unknown[]) => void): this;
    terminate(): void;
    close(code?: number, reason?: string): void;
  }
}
