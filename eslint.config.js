// Lint rules for slotflow. Workflow code runs inside Temporal's deterministic sandbox and
// schema/ is shared with it, so both are kept free of Node built-ins and I/O libraries.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const sandboxBanned = {
  patterns: [
    { group: ['node:*'], message: 'Node built-ins are not available in the workflow sandbox.' },
    {
      group: [
        'fs',
        'fs/*',
        'path',
        'os',
        'crypto',
        'child_process',
        'net',
        'http',
        'https',
        'dns',
        'stream',
        'events',
        'util',
        'worker_threads',
        'process',
        'timers',
        'url',
        'zlib',
      ],
      message: 'Node built-ins are not available in the workflow sandbox.',
    },
    {
      group: [
        '@nats-io/*',
        'execa',
        'pino',
        'pino-*',
        'libp2p',
        '@libp2p/*',
        '@chainsafe/*',
        '@temporalio/client',
        '@temporalio/worker',
        '@temporalio/activity',
        '@temporalio/testing',
        '../activities/*',
        '../eventlog/*',
        '../signing/*',
        '../stack/*',
        '../node-agent/*',
        '../cli/*',
        '../workers/*',
      ],
      message: 'I/O libraries and non-deterministic modules are banned here; call an activity instead.',
      allowTypeImports: true,
    },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'bench/results/**', 'test-output/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['workflows/**/*.ts', 'bench/workflows/**/*.ts', 'schema/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', sandboxBanned],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'process is not available in the workflow sandbox.' },
        { name: 'Buffer', message: 'Buffer is a Node built-in; use Uint8Array.' },
        { name: 'setImmediate', message: 'not deterministic in the workflow sandbox.' },
        { name: 'require', message: 'use static imports.' },
      ],
    },
  },
);
