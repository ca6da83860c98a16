import type { RedisServer } from '../helpers/redis.ts'
import { afterAll, beforeAll } from 'vitest'
import { createRedisBackplane } from '../../src/backplane/redis.ts'
import { startRedis } from '../helpers/redis.ts'
import { describeBackplane } from './contract.ts'

let redis: RedisServer
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(() => redis.kill())

describeBackplane('redis', () => ({ connect: () => createRedisBackplane({ url: redis.url }) }))
