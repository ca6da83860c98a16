import type { PeerInfo } from '../types.ts'
import type { LabelSelector } from './match.ts'
import { compileGlob, matchesLabel, parseLabelSelector } from './match.ts'

export interface RoutingPolicy {
  /** Recipients' plugin ids (globs) that may receive routed events; unset = any. */
  allowPlugins?: string[]
  /** Recipients' plugin ids (globs) that never receive routed events. */
  denyPlugins?: string[]
  /** Label selectors of which a recipient must match at least one; unset = any. */
  allowLabels?: string[]
  /** Label selectors of which any match excludes the recipient. */
  denyLabels?: string[]
}

export type RecipientFilter = (peer: PeerInfo) => boolean

function anyGlob(globs: string[] | undefined): (value: string) => boolean {
  const tests = (globs ?? []).map(compileGlob)
  return (value: string) => tests.some(test => test(value))
}

function anyLabel(selectors: LabelSelector[], labels: Record<string, string>): boolean {
  return selectors.some(selector => matchesLabel(labels, selector))
}

/**
 * Compiles a policy into a recipient filter. Allow lists must match, any deny match excludes.
 * Peers that have not announced have no plugin or labels: allow lists exclude them.
 */
export function compilePolicy(policy: RoutingPolicy | undefined): RecipientFilter | undefined {
  if (!policy)
    return undefined
  const { allowPlugins, denyPlugins, allowLabels, denyLabels } = policy
  if (!allowPlugins && !denyPlugins && !allowLabels && !denyLabels)
    return undefined
  const allowPlugin = allowPlugins && anyGlob(allowPlugins)
  const denyPlugin = anyGlob(denyPlugins)
  const allowSelectors = allowLabels?.map(parseLabelSelector)
  const denySelectors = (denyLabels ?? []).map(parseLabelSelector)

  // Identities are immutable (a re-announce makes a new one), so a verdict holds for an identity's life.
  const verdicts = new WeakMap<object, boolean>()
  return (peer) => {
    // A peer without modules is judged by its own identity (an AIRI extension peer), if it has one.
    const identity = peer.module?.identity ?? peer.identity
    if (!identity)
      return !allowPlugin && !allowSelectors
    let verdict = verdicts.get(identity)
    if (verdict === undefined) {
      const { pluginId, labels } = identity
      verdict = (!allowPlugin || allowPlugin(pluginId))
        && (!allowSelectors || anyLabel(allowSelectors, labels))
        && !denyPlugin(pluginId)
        && !anyLabel(denySelectors, labels)
      verdicts.set(identity, verdict)
    }
    return verdict
  }
}
