#!/usr/bin/env node
import process from 'node:process'
import { main } from '../dist/cli.js'

main().then((code) => {
  if (code !== undefined)
    process.exitCode = code
}, (error) => {
  console.error(error)
  process.exit(1)
})
