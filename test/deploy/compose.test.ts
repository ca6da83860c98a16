import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ENV_OPTIONS } from '../../src/cli.ts'
import { DEFAULT_PORT } from '../../src/listen.ts'
import { ROOT } from '../helpers/process.ts'

// Docker cannot run here: these check that the deployment files agree with each other and with
// the hub's own option spec, which is what breaks when one of them is edited alone.

interface Service {
  command?: string[]
  build?: string
  image?: string
  env_file?: string | string[]
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  ports?: string[]
  volumes?: string[]
}

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> }
const services = compose.services
const hubs = Object.entries(services).filter(([, service]) => service.build === '.')
const knownVariables = new Set(ENV_OPTIONS.map(option => option.env))

describe('docker-compose.yml', () => {
  it('runs redis, two hub replicas built from this Dockerfile and a proxy', () => {
    expect(Object.keys(services).sort()).toEqual(['hub-1', 'hub-2', 'proxy', 'redis'])
    expect(hubs.map(([name]) => name)).toEqual(['hub-1', 'hub-2'])
    expect(existsSync(join(ROOT, 'Dockerfile'))).toBe(true)
  })

  it('gives every service a healthcheck, and depends only on healthy services that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, name).toBeDefined()
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services[dependency], `${name} depends on ${dependency}`).toBeDefined()
        expect(condition).toBe('service_healthy')
      }
    }
    expect(services.redis!.healthcheck!.test).toEqual(['CMD', 'redis-cli', 'ping'])
    // Above the largest node state (one pub/sub message of up to 64 MiB), or Redis drops every subscriber.
    const command = services.redis!.command!
    expect(command[command.indexOf('--client-output-buffer-limit') + 1]).toBe('pubsub 256mb 64mb 60')
  })

  it('configures each hub with .env, known variables, REDIS_URL at the redis service and a distinct instance id', () => {
    const ids = new Set<string>()
    for (const [name, hub] of hubs) {
      expect([hub.env_file].flat(), name).toContain('.env')
      const environment = hub.environment!
      for (const variable of Object.keys(environment))
        expect(knownVariables, `${name}: ${variable}`).toContain(variable)
      const redis = new URL(environment.REDIS_URL!)
      expect(redis.protocol).toBe('redis:')
      expect(services[redis.hostname], 'REDIS_URL names the redis service').toBe(services.redis)
      expect(redis.port).toBe('6379')
      expect(environment.HOST).toBe('0.0.0.0') // reachable from the proxy
      ids.add(environment.SERVER_INSTANCE_ID!)
      expect(hub.depends_on).toHaveProperty('redis')
      // The healthcheck probes /healthz on the port the hub listens on.
      const probe = hub.healthcheck!.test.join(' ')
      expect(probe).toContain(`http://127.0.0.1:${environment.PORT}/healthz`)
    }
    expect(ids.size).toBe(hubs.length)
  })

  it('puts the proxy in front of every hub, on the hub port', () => {
    const proxy = services.proxy!
    expect(proxy.ports).toEqual([`${DEFAULT_PORT}:${DEFAULT_PORT}`])
    const [source] = proxy.volumes![0]!.split(':')
    const caddyfile = read(source!)
    for (const [name, hub] of hubs) {
      expect(caddyfile).toContain(`${name}:${hub.environment!.PORT}`)
      expect(proxy.depends_on).toHaveProperty(name)
      // Else every peer would share the proxy's address, and its per-address limit.
      expect(hub.environment!.TRUST_PROXY, `${name} trusts the proxy's X-Forwarded-For`).toBe('true')
    }
    expect(caddyfile).toContain(`:${DEFAULT_PORT} {`)
    expect(caddyfile).toContain('health_uri /readyz')
  })
})

describe('dockerfile', () => {
  const dockerfile = read('Dockerfile')
  const stages = dockerfile.split(/^FROM /m).slice(1)
  const runtime = stages.at(-1)!

  it('builds in one stage and runs a small image as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(runtime).toMatch(/^\S+-alpine\n/)
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).not.toMatch(/^COPY src/m) // only compiled output
  })

  it('checks /healthz, exposes the hub port and starts the CLI', () => {
    expect(runtime).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m)
    expect(runtime).toContain(`EXPOSE ${DEFAULT_PORT}`)
    expect(runtime).toContain(`PORT=${DEFAULT_PORT}`)
    expect(runtime).toContain('CMD ["node", "bin/hub-server.mjs"]')
  })

  it('copies only files that exist, and keeps .env out of the build context', () => {
    for (const [, from] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const path of from!.split(' '))
        expect(existsSync(join(ROOT, path)), path).toBe(true)
    }
    expect(read('.dockerignore').split('\n')).toContain('.env')
  })
})

describe('.env.example', () => {
  it('documents every variable the hub reads, with its default, and nothing else', () => {
    const example = parseEnv(read('.env.example'))
    expect(Object.keys(example).sort()).toEqual([...knownVariables].sort())
    for (const option of ENV_OPTIONS)
      expect(example[option.env], option.env).toBe(option.default)
  })
})
