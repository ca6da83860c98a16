import antfu from '@antfu/eslint-config'

export default antfu({
  type: 'lib',
  ignores: ['dist', 'bench/results', 'examples/**/.output', 'examples/**/node_modules'],
})
