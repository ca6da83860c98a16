import type { ErrorStage } from '../../src/errors.ts'
import { describe, expect, it } from 'vitest'
import { ENV_OPTIONS } from '../../src/cli.ts'
import { CONFIG_ENV_OPTIONS } from '../../src/config-file.ts'
import { DASHBOARD_ENV_OPTIONS, resolveDashboardOptions } from '../../src/dashboard/options.ts'
import { createHub } from '../../src/hub.ts'
import { LISTEN_ENV_OPTIONS, resolveListenOptions } from '../../src/listen.ts'
import { HUB_ENV_OPTIONS, resolveHubOptions } from '../../src/options.ts'
import { MAKAIO_ENV_OPTIONS, resolveMakaioOptions } from '../../src/protocol/makaio.ts'
import { PHOENIX_ENV_OPTIONS } from '../../src/protocol/phoenix.ts'
import { resolveThymianOptions, THYMIAN_ENV_OPTIONS } from '../../src/protocol/thymian.ts'
import { resolveServerOptions, SERVER_ENV_OPTIONS } from '../../src/server.ts'

describe('options', () => {
  it('counts every error reported through hub.report and hands it to the embedder, options left as given', async () => {
    const reported: Array<{ stage: ErrorStage, peerId?: string }> = []
    const onError = (_: unknown, context: { stage: ErrorStage, peerId?: string }): void => {
      reported.push(context)
    }
    const input = { env: {}, logger: { level: 'silent' as const }, onError }
    const hub = createHub(input)
    const counted: string[] = []
    hub.observers.on('error', reason => counted.push(reason))

    // What a gateway does with a frame it cannot decode: through the hub's error sink.
    hub.report(new Error('bad frame'), { stage: 'decode', peerId: 'p1' })

    expect(reported).toEqual([{ stage: 'decode', peerId: 'p1' }])
    expect(counted).toEqual(['decode'])
    expect(hub.options.onError).toBe(onError)
    await hub.close()
  })

  it('resolves each owner\'s options from env, naming the flag of a bad value', () => {
    expect(resolveHubOptions({ env: { HEARTBEAT_TIMEOUT_MS: '5000' } }).heartbeat.readTimeout).toBe(5000)
    expect(resolveListenOptions({ env: { PORT: '0', HOST: '0.0.0.0' } })).toMatchObject({ port: 0, host: '0.0.0.0' })
    expect(resolveServerOptions({ env: { ALLOWED_ORIGINS: 'https://App.example:443, *', METRICS_ENABLED: '0', REDIS_URL: 'redis://r:6379' } })).toEqual({
      gateways: [expect.objectContaining({ name: 'airi', paths: ['/ws'] }), expect.objectContaining({ name: 'phoenix' }), expect.objectContaining({ name: 'thymian', paths: ['/thymian'], port: undefined }), expect.objectContaining({ name: 'makaio', paths: ['/makaio'] })],
      http: { allowedOrigins: ['https://app.example', '*'], allowedHosts: [], trustProxy: false },
      metrics: { enabled: false, token: undefined, maxEventTypes: 50 },
      dashboard: { enabled: true, path: '/dashboard', token: undefined },
      redisUrl: 'redis://r:6379',
    })
    // The dashboard's token: its own, else the metrics token, else the authentication token.
    expect(resolveServerOptions({ env: { DASHBOARD_ENABLED: 'false', DASHBOARD_PATH: '/ops', METRICS_TOKEN: 'm', AUTHENTICATION_TOKEN: 'a' } }).dashboard).toEqual({ enabled: false, path: '/ops', token: 'm' })
    expect(resolveServerOptions({ env: { AUTHENTICATION_TOKEN: 'a' } }).dashboard.token).toBe('a')
    expect(resolveServerOptions({ env: { DASHBOARD_TOKEN: 'd', METRICS_TOKEN: 'm' } }).dashboard.token).toBe('d')
    expect(resolveDashboardOptions({ token: 'explicit' }, { DASHBOARD_TOKEN: 'd' }).token).toBe('explicit')
    expect(() => resolveDashboardOptions({}, { DASHBOARD_PATH: 'dash/' })).toThrow('Invalid DASHBOARD_PATH: "dash/"')
    expect(() => resolveDashboardOptions({}, { DASHBOARD_ENABLED: 'maybe' })).toThrow('; flag --dashboard)')
    expect(() => resolveHubOptions({ env: { MAX_PEERS: 'many' } })).toThrow('Invalid MAX_PEERS: "many" (expected an integer >= 1; flag --max-peers)')
    expect(() => resolveListenOptions({ env: { SHUTDOWN_TIMEOUT_MS: '-1' } })).toThrow('; flag --shutdown-timeout)')
    expect(() => resolveServerOptions({ env: { ALLOWED_HOSTS: 'a b' } })).toThrow('Invalid ALLOWED_HOSTS: "a b"')
    expect(resolveThymianOptions({ env: { THYMIAN_PORT: '51234', THYMIAN_MAX_EVENTS: '8' } })).toEqual({ path: '/thymian', port: 51234, maxEvents: 8 })
    expect(() => resolveThymianOptions({ env: { THYMIAN_PORT: 'yes' } })).toThrow('; flag --thymian-port)')
    expect(() => resolveMakaioOptions({ env: { MAKAIO_MAX_SUBSCRIPTIONS: '0' } })).toThrow('; flag --makaio-max-subscriptions)')
    expect(() => resolveMakaioOptions({ env: {}, broadcastTimeoutMs: 60_001 })).toThrow('Invalid makaio.broadcastTimeoutMs')
    // An option only code sets has no flag to name.
    expect(() => resolveHubOptions({ env: {}, auth: { maxFailures: 0 } })).toThrow('Invalid auth.maxFailures: 0 (expected an integer >= 1)')
  })

  it('lists every owner\'s env options on the command line, once each', () => {
    const declared = [HUB_ENV_OPTIONS, SERVER_ENV_OPTIONS, LISTEN_ENV_OPTIONS, PHOENIX_ENV_OPTIONS, THYMIAN_ENV_OPTIONS, MAKAIO_ENV_OPTIONS, CONFIG_ENV_OPTIONS, DASHBOARD_ENV_OPTIONS].flatMap(options => Object.values(options))
    expect(new Set(ENV_OPTIONS)).toEqual(new Set(declared))
    expect(ENV_OPTIONS).toHaveLength(declared.length)
    expect(new Set(ENV_OPTIONS.map(option => option.flag)).size).toBe(ENV_OPTIONS.length)
  })
})
