// BullMQ side of the benchmark: one step per run, against an empty Redis the caller flushed.
// Usage: node bench.js --redis-url redis://127.0.0.1:PORT/0 --step STEP [--n N] ...
//   single   N sequential `await queue.add()`                       -> jobs/s
//   bulk     addBulk in chunks of 1000                             -> jobs/s
//   drain    pre-fill N, one Worker (--concurrency), first processor call -> N-th completion
//   latency  one idle Worker, jobs added one at a time              -> ms percentiles
//   many     addBulk N with no worker, then getJobCounts() timing and Redis memory per job
//   drain with --http-url URL: each job GETs URL (a local server answering in 20 ms) over a
//            keep-alive agent: the I/O-bound drain of bench/io_wait.py
// Prints one JSON object on stdout; progress and errors go to stderr.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const CHUNK = 1000;
// Jobs are dropped on completion, like Celery's task_ignore_result=True.
const defaultJobOptions = { removeOnComplete: true, removeOnFail: true };

/** Wall clock in ms with sub-ms resolution. */
const now = () => performance.timeOrigin + performance.now();

async function freshQueue(name, connection) {
  const queue = new Queue(name, { connection, defaultJobOptions });
  await queue.waitUntilReady();
  await queue.add('warmup', {}); // loads the Lua scripts, opens the connection
  await queue.obliterate({ force: true });
  return queue;
}

async function expectCount(queue, n) {
  const count = await queue.count();
  if (count !== n) throw new Error(`expected ${n} waiting jobs, found ${count}`);
}

async function addBulk(queue, n) {
  for (let i = 0; i < n; i += CHUNK) {
    const size = Math.min(CHUNK, n - i);
    await queue.addBulk(Array.from({ length: size }, () => ({ name: 'noop', data: {} })));
  }
}

async function single(queue, n) {
  const start = now();
  for (let i = 0; i < n; i++) await queue.add('noop', {});
  const rate = n / ((now() - start) / 1000);
  await expectCount(queue, n);
  return rate;
}

async function bulk(queue, n) {
  const start = now();
  await addBulk(queue, n);
  const rate = n / ((now() - start) / 1000);
  await expectCount(queue, n);
  return rate;
}

async function usedMemory(redis) {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)[1]);
}

/** One GET of `url` over `agent`, the body read to its end. */
function get(url, agent) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
}

/** Pre-fill n jobs, start a Worker, time first processor call -> n-th 'completed' event. */
async function drain(queue, n, connection, concurrency, redis, httpUrl) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const before = await usedMemory(redis);
  await addBulk(queue, n);
  const bytesPerJob = ((await usedMemory(redis)) - before) / n;
  let first;
  let done = 0;
  const spawned = now();
  let worker;
  const end = await new Promise((resolve, reject) => {
    const work = httpUrl
      ? async () => { first ??= now(); await get(httpUrl, agent); }
      : async () => { first ??= now(); };
    worker = new Worker(queue.name, work, { connection, concurrency });
    worker.on('completed', () => { if (++done === n) resolve(now()); });
    worker.on('failed', (_job, err) => reject(err));
    worker.on('error', reject);
  });
  await worker.close();
  agent.destroy();
  await expectCount(queue, 0);
  return {
    jobs_per_s: n / ((end - first) / 1000),
    drain_s: (end - first) / 1000,
    startup_s: (first - spawned) / 1000,
    jobs_per_s_incl_startup: n / ((end - spawned) / 1000),
    bytes_per_waiting_job: bytesPerJob,
  };
}

function quantile(sorted, p) {
  // Linear interpolation between closest ranks, like Python's statistics 'inclusive'.
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (pos - lo);
}

function percentiles(values) {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { p50: quantile(s, 0.5), p95: quantile(s, 0.95), p99: quantile(s, 0.99), max: s[s.length - 1], mean, n: s.length };
}

/** One idle Worker; add jobs one at a time carrying their add time; ms from add to start. */
async function latency(queue, n, connection, concurrency, spacingMs) {
  const samples = [];
  let warm;
  const warmed = new Promise((resolve) => { warm = resolve; });
  const worker = new Worker(queue.name, async (job) => {
    const started = now();
    if (job.name === 'warmup') warm();
    else samples.push(started - job.data.t);
  }, { connection, concurrency });
  await queue.add('warmup', {});
  await warmed;
  await sleep(500); // let the worker go idle (blocked on the marker key)
  for (let i = 0; i < n; i++) {
    await queue.add('stamp', { t: now() });
    await sleep(spacingMs);
  }
  const deadline = Date.now() + 120_000;
  while (samples.length < n) {
    if (Date.now() > deadline) throw new Error(`only ${samples.length}/${n} latency samples`);
    await sleep(10);
  }
  await worker.close();
  return percentiles(samples);
}

async function timeCalls(fn, calls) {
  const samples = [];
  for (let i = 0; i < calls; i++) {
    const start = now();
    await fn();
    samples.push(now() - start);
  }
  const s = [...samples].sort((a, b) => a - b);
  return { median_ms: quantile(s, 0.5), p99_ms: quantile(s, 0.99), max_ms: s[s.length - 1] };
}

/** n waiting jobs and no worker: fill rate, memory per job, getJobCounts() time. */
async function many(queue, n, redis, calls) {
  const before = await usedMemory(redis);
  const start = now();
  await addBulk(queue, n);
  const fillS = (now() - start) / 1000;
  const after = await usedMemory(redis);
  await expectCount(queue, n);
  return {
    n,
    fill_jobs_per_s: n / fillS,
    bytes_per_waiting_job: (after - before) / n,
    used_memory_delta_bytes: after - before,
    counts: await timeCalls(() => queue.getJobCounts(), calls),
  };
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      'redis-url': { type: 'string' },
      step: { type: 'string' },
      n: { type: 'string', default: '20000' },
      'spacing-ms': { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1' },
      calls: { type: 'string', default: '200' },
      queue: { type: 'string', default: 'bench' },
      'http-url': { type: 'string', default: '' },
    },
  });
  const n = Number(args.n);
  const connection = { url: args['redis-url'] };
  const redis = new Redis(args['redis-url']);
  const queue = await freshQueue(args.queue, connection);
  let out;
  try {
    switch (args.step) {
      case 'single': out = await single(queue, n); break;
      case 'bulk': out = await bulk(queue, n); break;
      case 'drain': out = await drain(queue, n, connection, Number(args.concurrency), redis, args['http-url']); break;
      case 'latency':
        out = await latency(queue, n, connection, Number(args.concurrency), Number(args['spacing-ms']));
        break;
      case 'many': out = await many(queue, n, redis, Number(args.calls)); break;
      default: throw new Error(`unknown --step ${args.step}`);
    }
  } finally {
    await queue.close();
    redis.disconnect();
  }
  console.log(JSON.stringify(out));
}

await main();
