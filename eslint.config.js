import antfu from '@antfu/eslint-config'

export default antfu(
  {
    type: 'lib',
    ignores: ['dist', 'bench/results', 'examples/**/.output', 'examples/**/node_modules'],
  },
  {
    // Tests favour compact inline callbacks (`() => { a(); b() }`).
    files: ['test/**/*.ts'],
    rules: { 'style/max-statements-per-line': 'off' },
  },
)
