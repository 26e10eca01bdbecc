#!/usr/bin/env node
// Ember's stack as a CDK app: the same resources as ../template.yaml, checked by cdk-nag's
// AWS Solutions rules at synth time (every suppression carries its reason, in lib/ember-stack.ts).
//
// Context (cdk.json or `-c key=value`):
//   lambdaDir  directory holding ember-<function>.zip (scripts/release; default
//              $CARGO_TARGET_DIR/ember-release/<arch>, else ~/.cache/ember-target/ember-release/<arch>)
//   modelDir   the staged model layer (scripts/stage-model; default ../build/model-layer)
//   arch       arm64 (default) or x86_64, the architecture the zips were built for
//   account, region   the environment (defaults: CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION)
//   stackName  default "ember"
import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as os from 'os';
import * as path from 'path';
import { EmberStack } from '../lib/ember-stack';

const app = new cdk.App();
const ctx = (k: string): string | undefined => app.node.tryGetContext(k);
const arch = ctx('arch') ?? 'arm64';
if (arch !== 'arm64' && arch !== 'x86_64') {
  throw new Error(`context arch must be arm64 or x86_64, not ${arch}`);
}
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache', 'ember-target');
const stackName = ctx('stackName') ?? 'ember';
new EmberStack(app, stackName, {
  env: { account: ctx('account') ?? process.env.CDK_DEFAULT_ACCOUNT, region: ctx('region') ?? process.env.CDK_DEFAULT_REGION },
  lambdaDir: path.resolve(ctx('lambdaDir') ?? path.join(targetDir, 'ember-release', arch)),
  modelDir: path.resolve(ctx('modelDir') ?? path.join(__dirname, '..', '..', 'build', 'model-layer')),
  arm64: arch === 'arm64',
  description: 'Ember: lead scoring and nurturing (CDK app; see docs/deploy.md).',
});
cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
