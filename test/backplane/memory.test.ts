import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { describeBackplane } from './contract.ts'

describeBackplane('memory', () => {
  const bus = createMemoryBus()
  return { connect: () => createMemoryBackplane(bus) }
})
