#!/usr/bin/env node
import process from 'node:process'
import { main } from '../dist/cli.js'

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
