/**
 * The thresholds of `npm run bench:gate`, each beside the reason for its value. A ratio is ark over the
 * baseline measured in the same repetition (see each scenario's `gate`); the gate compares the median of
 * several repetitions with `max` (ark may be at most this much slower) or `min` (at least this fast).
 *
 * Values come from runs on the 2-core CI machine (figures below), with room for its noise: a threshold
 * must not fail a healthy build on a busy machine, and must fail on a regression of the size a careless
 * change makes (the gate's own test plants 200 us per loop iteration and expects a failure).
 */
export interface Threshold {
  readonly scenario: string
  readonly ratio: string
  readonly max?: number
  readonly min?: number
  readonly why: string
}

export const THRESHOLDS: readonly Threshold[] = [
  {
    scenario: 'toolloop',
    ratio: 'loop/baseline per iteration',
    max: 10,
    why: "Measured 3.3 to 4.0 (the loop costs about 1.2 us an iteration over the 0.4 us of the bare calls). 10 fails when the loop's own work more than doubles; a planted 200 us per iteration reads about 500.",
  },
  {
    scenario: 'agent',
    ratio: 'mock agent/direct p50 @1',
    max: 3,
    why: 'Measured with the load generator and the servers pinned to different CPUs (pinServers): 1.24 to 1.98 per sample, medians 1.49 to 1.74, also with one or two CPU hogs running beside it (an agent on the in-process mock costs about 110 us a request, the mock upstream serving the same completion about 70). Unpinned, the scheduler’s placement alone swung samples from 0.9 to 3.3 and failed CI. On the AMD EPYC machines (2026-12-06) medians read 1.77 to 2.08 locally and 2.35 in a CI run, the same before and after the change under test, so 2.2 failed CI on the machine kind rather than on ark. 2.6 left that room until, on 2026-12-07, runs of the same machine kind read 1.84 to 2.64 (samples 1.42 to 6.39), the landed code (f9502d9) and the next side by side alike (1.84 and 2.14 against 2.07 and 2.04). 3 keeps a gate that a healthy build passes; 200 us more per request still reads above 4.',
  },
  {
    scenario: 'agent',
    ratio: 'mock agent/direct req/s @50',
    min: 0.18,
    why: 'Measured 0.38 to 0.55 per sample. Throughput at 50 connections is the noisiest figure here: the direct run (load generator and upstream alone on the 2 cores) swings between 9k and 19k requests/s with what else the machine runs. So this only catches a collapse (ark at under half its throughput); p50 at 1 connection above is the sharp check. 200 us more per request reads 0.16 to 0.25.',
  },
  {
    scenario: 'passthrough',
    ratio: 'ark/bare proxy p50 @1',
    max: 3,
    why: "ark against bench/lib/bare-proxy.ts (the least a Node proxy does), both a second hop in front of the same upstream, pinned (pinServers). Against the upstream direct the ratio followed the machine kind: medians 3.4 to 4.0 on one, 6.7 to 7.2 on the AMD EPYC machines with the same code, since a hop there costs more wake-up time. Against the bare proxy, measured on AMD EPYC (2026-12-06): medians 1.78 and 1.97 quiet, 2.25 with two CPU hogs (samples 1.6 to 6.8). In the full scenario ark added 254 us at p50 and the bare proxy 142 (direct 64), so 3 fails when ark's added latency grows by 300 us (2.2 times its own).",
  },
  {
    scenario: 'passthrough',
    ratio: 'ark/direct req/s @50',
    min: 0.15,
    why: 'Measured 0.21 to 0.41 per sample, medians 0.29 to 0.39: ark is one more Node HTTP server and client per request, and the three processes share 2 cores; the direct side swings with machine load, as in the agent gate. 0.15 fails a return to the path before it was tuned (0.09: the OpenAI SDK over the global fetch).',
  },
  {
    scenario: 'sandbox',
    ratio: 'isolated/main thread p50',
    max: 60,
    why: 'Measured 8.5 on a busy machine to 25 on an idle one (waking a sleeping plugin thread is the cost: 26 to 80 us against 3 us for the SDK on the calling thread). 60 fails a sandbox that instantiates, compiles or starts a thread per call (hundreds of us to ms), not the machine’s mood.',
  },
  {
    scenario: 'auth',
    ratio: 'keys/open time per request, in process',
    max: 1.5,
    why: "Issue 21's API keys: gateways built as ark dev builds its own, one open and one asking for a key, the same mock-agent request through @hono/node-server's listener without a socket (bench/lib/node-inject.ts), in one worker, alternating batches of 2,000 timed by the process's CPU time. Measured medians 1.01 to 1.13 (2026-12-07, AMD EPYC, 2-core VM; single samples 0.3 to 3.2); before that day's changes, through each app's fetch, 0.97 to 1.31. A key costs about 4 us of a 46 us request there: the middleware layer about 1, SHA-256 about 0.6, the rest the check. The issue's 5% is reported by `npm run bench -- auth`, not held here; 1.5 fails a check that costs 20 us more a request (a slow hash, a file read per request), not the noise.",
  },
  {
    scenario: 'auth',
    ratio: 'limits/open time per request, in process',
    max: 2.5,
    why: "Issue 21's quotas: as the keys' gate, with a key that has a scope, a request rate and a daily token limit (checked on every request, never reached). Measured medians 1.26 to 1.29 (2026-12-07, AMD EPYC, 2-core VM, single samples 1.04 to 3.7) once quotas were decided without a turn of the event loop and responses kept their headers as a record; before, through each app's fetch (undici checks every header of a Response: the six x-ratelimit headers cost about 4 us there), 1.32 to 1.84. Over HTTP the same key reads 1.01 of the open gateway's throughput. The issue's 5% in process is missed and reported by `npm run bench -- auth`. 2.5 leaves room for this machine's noise and fails a quota check that goes to a store per request or holds a lock.",
  },
  {
    scenario: 'team',
    ratio: 'team turn/agent request p50 @1',
    max: 1,
    why: "Issue 19's target itself: a team's turn (a task on its member's pool, with the conversation so far) may cost at most what one agent request through the gateway costs. Measured 0.39 on AMD EPYC (2026-12-07: a team of four at 306 us p50 against 197 us for one agent); the turn skips HTTP and admission, which a request pays, so a regression has to add about 120 us a turn to fail it.",
  },
  {
    scenario: 'redis',
    ratio: 'round trip/ping p50',
    max: 40,
    why: 'Measured medians 8 to 12 (180 us against a 15 us PING): a task crosses Redis four times (XADD, the blocking XREADGROUP, the cancelled-key check, the answer MULTI and the gateway’s blocking XREAD). 40 fails when a task gains several round trips or a polling delay, not when the machine is busy, since PING shares its mood.',
  },
  {
    scenario: 'redact',
    ratio: 'body scan/indexOf',
    max: 3.5,
    why: "Measured 1.3 to 1.7 per sample, medians about 1.45: every form of a Model's key and header (8 patterns for keys of URL-safe characters: raw, and base64 and base64url cores at three alignments) searched in a 16 KB answer in one Wu-Manber pass, against one native Buffer.indexOf of the key alone (5 GB/s against 7 on this machine). The same search with a fixed 8-character window (jumps of 7 at most) read 4.2, an indexOf per pattern 4, a regex of all the patterns 18, a two-character filter at every position about 9. 3.5 fails a search that stops jumping over text, not the machine's mood.",
  },
  {
    scenario: 'redact',
    ratio: 'stream redacted/plain',
    max: 3,
    why: 'Measured 0.5 to 2.1 per sample, medians 1.05 to 1.2: a 200-event SSE stream through the guard with the redactor and without; the stream machinery costs far more than the search. The samples swing with GC pauses (each side takes about 16 ms), so this only catches a collapse: a guard that copies or rescans what it already passed (quadratic) reads well above 3.',
  },
  {
    scenario: 'redact',
    ratio: 'log line redacted/plain',
    max: 2.5,
    why: "Measured 1.05 to 1.75 per sample, medians 1.1 to 1.3: a log line searched for three Models' secrets (36 patterns) costs 0.1 to 0.3 us on top of the 0.8 us that formatting it takes. A logger that rebuilt its redactor per line read about 100; one that searched once per secret would read 3 or more.",
  },
  {
    scenario: 'mcp',
    ratio: 'ark/direct p50',
    max: 2.5,
    why: "Over SSE, pinned (pinServers): 1.02 to 1.53 per sample, medians 1.08 to 1.28 on a quiet machine, 1.17 to 1.38 with one or two CPU hogs beside it (ark adds about 80 us to the SDK Client's 700 to 800 us call: its own fetch rebuilding each response around a bounded stream, a timer and an AbortController per call, the result made into a ToolResult). A connection per call (connect, initialize, tools/list, close) read 7 to 11; 2.5 is ark adding about 1 ms, issue 17's bound, to this machine's direct call. A planted 200 us per call reads about 1.45, inside the noise: this catches set-up per call, not small costs. SSE because its direct call costs a third of streamable HTTP's (2.2 to 2.6 ms, where a connection per call reads only 3.5 to 4.6), and five samples take about 4 s.",
  },
  {
    scenario: 'mcp',
    ratio: 'sessions opened/call',
    max: 0,
    why: 'Sessions the server opened while a sample ran, per call (its own count; both clients connect before the samples): 0 in every sample measured. A count, not a time, so no noise: a connection per call reads 1, and one reconnect in one sample reads 0.002, which the median of five leaves out. Issue 17: no connection set-up per call.',
  },
  {
    scenario: 'a2a',
    ratio: 'a2a/chat p50 @1',
    max: 2,
    why: "A blocking A2A SendMessage against the same agent through /v1/chat/completions on one ark dev, pinned. Issue 18's target is 1.3: full runs on AMD EPYC (2026-12-06) read 1.12, 1.20 and 1.31 (about 160 us against 125 to 160), gate medians 1.27 and 1.30 (samples 1.08 to 1.66). Through the SDK's own request handler (a task load, deep clone and save per event) it read 2.41 to 2.45; 2 fails a return to that, or any growth of A2A's own cost by about 100 us.",
  },
]
