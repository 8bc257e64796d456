// Lint (npm run lint): typescript-eslint's strict type-checked rules over every TypeScript
// source. Formatting is Prettier's (npm run format), so no style rules here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', '.ci-node/', 'load/k6/', 'bin/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Numbers and booleans read plainly in messages; objects and undefined still do not.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `() => void promise` and `(x) => set.add(x)` shorthands are clear.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
    },
  },
  {
    // Tests and load tools call the engine through @grpc/proto-loader's dynamic clients, whose
    // replies are untyped by construction, and read fixtures they have just made: the
    // no-unsafe-* rules and the non-null rule would flag every reply field they assert on.
    files: ['test/**', 'load/**', 'tools/**', '**/*.test.ts', 'examples/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Rejections asserted on are the client's RpcError, named where they are caught; async
      // arrows without await stand in a table beside ones that await.
      '@typescript-eslint/use-unknown-in-catch-callback-variable': 'off',
      '@typescript-eslint/require-await': 'off',
      // Fixtures are assigned in beforeAll (and may be missing when it failed) and loop flags are
      // flipped by a concurrent task: the compiler's narrowing sees neither, so guards look needless.
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  // This file and other plain JavaScript are outside the TypeScript project.
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
