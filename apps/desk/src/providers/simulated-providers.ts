import { randomUUID } from 'node:crypto';
import { type SimulatedProvider, startSimulatedProvider } from './simulated-provider.js';

/** Longest symbol list one quotes call may ask for (the provider answers 404 beyond it). */
const MAX_SYMBOLS = 50;

/**
 * The simulated market-data provider: `GET /v1/quotes?symbols=ES,NQ` answers a random-walk price
 * per symbol; `GET /health` answers ok. Stands in for a feed such as Databento.
 */
export function startMarketData(port = 0): Promise<SimulatedProvider> {
  const prices = new Map<string, number>();
  return startSimulatedProvider({
    name: 'market-data',
    port,
    routes: {
      'GET /health': () => ({ status: 'ok' }),
      'GET /v1/quotes': (url) => {
        const symbols = (url.searchParams.get('symbols') ?? '').split(',').filter((s) => /^[A-Z0-9]{1,8}$/.test(s));
        if (symbols.length === 0 || symbols.length > MAX_SYMBOLS) return undefined;
        const at = new Date().toISOString();
        return {
          quotes: symbols.map((symbol) => {
            const last = prices.get(symbol) ?? 50 + (symbol.charCodeAt(0) % 26) * 20;
            const price = Math.max(1, last * (1 + (Math.random() - 0.5) * 0.004));
            prices.set(symbol, price);
            return { symbol, price: Math.round(price * 100) / 100, at };
          }),
        };
      },
    },
  });
}

/**
 * The simulated broker: `GET /v1/account` answers balances, `POST /v1/orders` acknowledges an
 * order; `GET /health` answers ok. Stands in for a broker API such as Ironbeam.
 */
export function startBroker(port = 0): Promise<SimulatedProvider> {
  return startSimulatedProvider({
    name: 'broker',
    port,
    routes: {
      'GET /health': () => ({ status: 'ok' }),
      'GET /v1/account': () => ({ balance: 250_000, marginUsed: 41_250, currency: 'USD' }),
      'POST /v1/orders': () => ({ orderId: randomUUID(), status: 'accepted' }),
    },
  });
}
