import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks a presented admin token in constant time. Both sides are hashed first so the comparison
 * takes the same time whatever the presented length (timingSafeEqual needs equal lengths).
 */
export function createAdminTokenCheck(token: string | undefined): (presented: unknown) => boolean {
  if (token === undefined) return () => false;
  const expected = digest(token);
  return (presented) =>
    typeof presented === 'string' && presented.length > 0 && timingSafeEqual(digest(presented), expected);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
