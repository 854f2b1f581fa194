// Express 4, installed under the alias `express4` so the conformance suite runs against 4 and 5;
// its API as used there is the same as Express 5's types describe.
declare module 'express4' {
  import express from 'express';
  export default express;
}
