import type { Identity, PeerInfo } from '../types.ts'
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

/** Whether a peer may receive routed events; `explain` names the rule that excludes it (undefined = allowed). */
export interface RecipientFilter {
  (peer: PeerInfo): boolean
  explain: (peer: PeerInfo) => string | undefined
}

/** The first of `sources` whose compiled test passes `value`, by its source text. */
function firstMatch<T>(sources: string[] | undefined, compile: (source: string) => (value: T) => boolean): (value: T) => string | undefined {
  const tests = (sources ?? []).map(source => [source, compile(source)] as const)
  return value => tests.find(([, test]) => test(value))?.[0]
}

function labelTest(source: string): (labels: Record<string, string>) => boolean {
  const selector: LabelSelector = parseLabelSelector(source)
  return labels => matchesLabel(labels, selector)
}

const list = (sources: string[]): string => sources.map(source => `"${source}"`).join(', ')

/**
 * Compiles a policy into a recipient filter. Allow lists must match, any deny match excludes.
 * Peers that have not announced have no plugin or labels: allow lists exclude them. The filter
 * and its `explain` run the same matchers in the same order, so the rule named is the one applied.
 */
export function compilePolicy(policy: RoutingPolicy | undefined): RecipientFilter | undefined {
  if (!policy)
    return undefined
  const { allowPlugins, denyPlugins, allowLabels, denyLabels } = policy
  if (!allowPlugins && !denyPlugins && !allowLabels && !denyLabels)
    return undefined
  const allowPlugin = firstMatch(allowPlugins, compileGlob)
  const denyPlugin = firstMatch(denyPlugins, compileGlob)
  const allowLabel = firstMatch(allowLabels, labelTest)
  const denyLabel = firstMatch(denyLabels, labelTest)

  /** Why the policy excludes a peer of this identity (none: a peer without one); undefined when it does not. */
  function judge(identity: Identity | undefined): string | undefined {
    if (!identity) {
      if (allowPlugins)
        return `policy allowPlugins (${list(allowPlugins)}): the peer has no plugin (it has not announced)`
      if (allowLabels)
        return `policy allowLabels (${list(allowLabels)}): the peer has no labels (it has not announced)`
      return undefined
    }
    const { pluginId, labels } = identity
    if (allowPlugins && allowPlugin(pluginId) === undefined)
      return `policy allowPlugins (${list(allowPlugins)}): plugin "${pluginId}" matches none`
    if (allowLabels && allowLabel(labels) === undefined)
      return `policy allowLabels (${list(allowLabels)}): labels match none`
    const deniedPlugin = denyPlugin(pluginId)
    if (deniedPlugin !== undefined)
      return `policy denyPlugins "${deniedPlugin}" (plugin "${pluginId}")`
    const deniedLabel = denyLabel(labels)
    if (deniedLabel !== undefined)
      return `policy denyLabels "${deniedLabel}"`
    return undefined
  }

  // A peer without modules is judged by its own identity (an AIRI extension peer), if it has one.
  const identityOf = (peer: PeerInfo): Identity | undefined => peer.module?.identity ?? peer.identity
  // Identities are immutable (a re-announce makes a new one), so a verdict holds for an identity's life.
  const verdicts = new WeakMap<object, boolean>()
  // Without an identity only the allow lists matter: decided once, not per event and peer.
  const admitsAnonymous = judge(undefined) === undefined
  const filter = (peer: PeerInfo): boolean => {
    const identity = identityOf(peer)
    if (!identity)
      return admitsAnonymous
    let verdict = verdicts.get(identity)
    if (verdict === undefined) {
      verdict = judge(identity) === undefined
      verdicts.set(identity, verdict)
    }
    return verdict
  }
  return Object.assign(filter, { explain: (peer: PeerInfo) => judge(identityOf(peer)) })
}
