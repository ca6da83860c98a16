import { join } from 'node:path'
import process from 'node:process'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClient } from '../../src/client/index.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { ROOT, run } from '../helpers/process.ts'

// examples/client/weather-bot.mjs, run as a user runs it: `node` on the file, importing
// `hub-server/client` from the built package (dist/, built by test/setup/build.ts).

describe('the client example (examples/client)', () => {
  it('answers requests, greets back, asks the clock, and leaves on SIGTERM', async () => {
    const hub = await startHub({ auth: { token: 'secret' } })
    const clock = createClient({ url: hub.url(), token: 'secret', WebSocket, module: { name: 'clock' } })
    onCleanup(() => clock.close())
    clock.respond('clock:now', () => ({ now: '12:00' }))
    const airi = await RawPeer.connect(hub.url())
    await airi.join('greeter', { token: 'secret' })
    await until(() => clock.status === 'open', 'the clock to open')

    const bot = run(process.execPath, [join(ROOT, 'examples/client/weather-bot.mjs')], { env: { HUB_URL: hub.url(), HUB_TOKEN: 'secret' } })
    await bot.waitForOutput(/the clock says 12:00/)
    expect(bot.output).toMatch(/^ready: /m)
    expect(await clock.request('weather:forecast', { city: 'Oslo' })).toEqual({ city: 'Oslo', forecast: 'sunny', celsius: 21 })
    await expect(clock.request('weather:forecast', {})).rejects.toMatchObject({ code: 'error_reply', message: 'which city?' })

    airi.send({ type: 'chat:hello', data: { name: 'airi' }, route: { destinations: ['module:weather'] } })
    await bot.waitForOutput(/hello from airi \(greeter\)/)
    await airi.waitFor(e => e.type === 'chat:hello' && e.data.name === 'weather')

    bot.child.kill('SIGTERM')
    expect(await bot.exitCode()).toBe(0)
    await until(() => !clock.find('weather'), 'the bot to leave')
    expect(bot.output).not.toMatch(/error:/)
  })
})
