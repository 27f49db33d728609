/**
 * Drivers for query generators: a computation written once as a generator that yields each request to an
 * outside service (a teacher's velocity, say) and is resumed with the answer runs either synchronously or
 * awaiting each answer. An answer that throws is thrown into the generator (its cleanup runs) and out.
 */

/** Runs a query generator to its end, answering each query synchronously. */
export function runQueriesSync<Q, R, A>(generator: Generator<Q, R, A>, answer: (query: Q) => A): R {
  let next = generator.next();
  while (!next.done) {
    let reply: A;
    try {
      reply = answer(next.value);
    } catch (error) {
      next = generator.throw(error);
      continue;
    }
    next = generator.next(reply);
  }
  return next.value;
}

/** Runs a query generator to its end, awaiting each answer. */
export async function runQueriesAsync<Q, R, A>(
  generator: Generator<Q, R, A>,
  answer: (query: Q) => Promise<A>,
): Promise<R> {
  let next = generator.next();
  while (!next.done) {
    let reply: A;
    try {
      reply = await answer(next.value);
    } catch (error) {
      next = generator.throw(error);
      continue;
    }
    next = generator.next(reply);
  }
  return next.value;
}
