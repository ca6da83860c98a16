// hub-server.config.example.ts: copy to hub-server.config.ts (or .js, .mjs, .json, .yaml) in the
// directory `hub-server` runs from, or pass `--config <path>`. Every field is optional and may
// also be passed to `createServer()`. Flags, environment variables and `.env` win over this
// file (flags > env > .env > this file > defaults). The values below are the defaults, except
// where a comment says "example".
import type { ServerOptions } from './src/server.ts' // in your project: from 'hub-server'

export default {
  // Modules the hub knows by name (example).
  modules: [
    {
      name: 'brain',
      // Only a peer that authenticated with this token may announce `brain`, and that peer may
      // announce nothing else. AUTHENTICATION_TOKEN never admits it.
      token: 'brain-secret',
      // /readyz is 503 (naming it) until it is announced, on this node or another one.
      required: true,
      // Sent to it as `module:configure {config: options}` after every announce; a Phoenix
      // plugin also gets them in its join reply (`{status: "ok", response: {config}}`).
      options: { model: 'large', temperature: 0.2 },
      // Merged over the labels it announces: policies can rely on them.
      labels: { trust: 'internal' },
    },
    { name: 'voice', required: true, options: { voice: 'alto' } },
  ],
  // How long start-up waits for the required modules before it logs the missing ones (it keeps
  // serving). Env REQUIRED_TIMEOUT_MS, flag --required-timeout.
  requiredTimeoutMs: 4000,

  // Names this hub in `metadata.source` (env SERVER_INSTANCE_ID; default a generated id).
  // instanceId: 'hub-1',
  auth: {
    // Token(s) every peer may authenticate with (env AUTHENTICATION_TOKEN; none = auth off, but
    // a module with its own token still needs it).
    // token: 'shared-secret',
    // A peer that has not authenticated after this long is closed with 4001 (0 = never).
    timeoutMs: 30_000,
    // Bad tokens a peer may present before it is closed with 4001.
    maxFailures: 3,
  },
  heartbeat: {
    // Silence after which a peer is unhealthy; closed with 4000 at twice this (env HEARTBEAT_TIMEOUT_MS).
    readTimeout: 60_000,
    // The `message` of the hub's heartbeat pongs.
    message: '💛',
  },
  routing: {
    // Who may receive routed events: plugin globs and label selectors (example: none).
    policy: { denyLabels: [] },
    // Functions that may drop or rewrite recipients (config files in .ts/.js/.mjs only).
    middleware: [],
    // Trusted devtools peers may skip policy and middleware with `route.bypass: true`.
    allowBypass: true,
    // Tokens that authenticate a peer as trusted devtools.
    devtoolsTokens: [],
  },
  limits: {
    maxPayloadBytes: 1024 * 1024, // largest inbound frame (env MAX_PAYLOAD_BYTES)
    maxBufferedBytes: 4 * 1024 * 1024, // unread outbound bytes before a peer is closed with 1013 (env MAX_BUFFERED_BYTES)
    maxPeers: 10_000, // open sockets; past this an upgrade gets 503 (env MAX_PEERS)
    maxPendingPerAddress: 32, // unauthenticated sockets per address; past this 429 (env MAX_PENDING_PER_ADDRESS)
    maxPendingPayloadBytes: 16 * 1024, // largest frame before authentication (env MAX_PENDING_PAYLOAD_BYTES)
    eventsPerSec: 200, // frames per second per socket, 0 = no limit (env RATE_LIMIT_EVENTS_PER_SEC)
    // eventsBurst: 400, // frames at once (env RATE_LIMIT_BURST; default twice eventsPerSec)
    bytesPerSec: 8 * 1024 * 1024, // bytes per second per socket, 0 = no limit (env RATE_LIMIT_BYTES_PER_SEC)
    rateLimitGraceMs: 1000, // time over the rate limit before the socket is closed with 4029
    maxNameLength: 256, // longest name, id, label, event type, destination
    maxLabels: 64, // labels per announced identity
    maxModulesPerPeer: 64, // modules one peer may hold
    maxConsumersPerPeer: 64, // consumer registrations one peer may hold
    maxDestinations: 64, // destinations per event
    maxExpressionDepth: 8, // nesting of and/or routing expressions
    maxRouteItems: 256, // routing work per event
    maxDataDepth: 64, // nesting of objects and arrays in an event
  },
  // Take the client address from X-Forwarded-For: only behind a proxy (env TRUST_PROXY).
  trustProxy: false,
  phoenix: {
    // Phoenix Channels endpoints (each also with `/websocket`); [] turns the gateway off.
    paths: ['/socket', '/debug_socket', '/release_socket', '/plugin_socket'],
    // Topic prefixes a channel may join as `<prefix>:<module name>`.
    topics: ['plugin', 'plugins', 'debug_plugin', 'release_plugin'],
    // Channels one socket may join (env PHOENIX_MAX_CHANNELS).
    maxChannels: 100,
  },
  logger: {
    level: 'log', // silent | error | warn | log | info | debug | trace (env LOG_LEVEL)
    format: 'pretty', // pretty | json (env LOG_FORMAT)
  },
  cluster: {
    // A silent node is gone after this; its modules are de-announced (env CLUSTER_NODE_TIMEOUT_MS).
    nodeTimeoutMs: 10_000,
    // How often each node says it is alive (default a fifth of nodeTimeoutMs).
    // heartbeatMs: 2000,
    // Prefix of the backplane's channels, so several clusters can share one Redis.
    prefix: 'hub-server',
  },
  // Redis to cluster through (env REDIS_URL; default none: a single process).
  // redisUrl: 'redis://localhost:6379',
  // Path of the native (AIRI) WebSocket endpoint.
  path: '/ws',
  http: {
    // Web origins whose pages may connect, besides the hub's own and localhost (env ALLOWED_ORIGINS).
    allowedOrigins: [],
    // Host names answered besides loopback ones (env ALLOWED_HOSTS).
    allowedHosts: [],
  },
  metrics: {
    enabled: true, // serve GET /metrics (env METRICS_ENABLED)
    // token: 'metrics-secret', // bearer token /metrics requires (env METRICS_TOKEN)
    maxEventTypes: 50, // event types labelled by name; the rest count as `other`
  },
} satisfies ServerOptions
