// Lint: typescript-eslint's type-aware rules catch what matters in async server code
// (floating promises, misused promises, unsafe any); Prettier owns formatting.
import js from '@eslint/js'
import { defineConfig } from 'eslint/config'
import tseslint from 'typescript-eslint'

export default defineConfig(
  // plugins/<name>/ hold AssemblyScript, which only looks like TypeScript; plugins/build.ts is ours.
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'deploy/', 'bench/results/', 'plugins/*/'] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      '@typescript-eslint/no-unnecessary-condition': ['error', { allowConstantLoopConditions: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-confusing-void-expression': 'off',
      'no-console': 'error',
      // @kubernetes/client-node models every API object as a class (V1Namespace, V1ObjectMeta, ...) that is
      // plain data; the API and its own docs take object literals for them.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  {
    // The CLI, the plugin build and the benchmarks talk to a terminal.
    files: ['bin/**', 'bench/**', 'plugins/build.ts', 'build.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // The dashboard's browser script: typed by its own tsconfig (checkJs, the DOM's types), which also finds
    // undefined names; the type-aware rules stay with the server's TypeScript.
    files: ['gateway/ui/assets/**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    rules: { 'no-undef': 'off' },
  },
  {
    files: ['**/*.test.ts', 'test/**'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', 'no-console': 'off' },
  },
)
