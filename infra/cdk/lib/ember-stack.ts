// Ember's stack in CDK: the resources of ../../template.yaml (SAM), one for one — same
// parameters, table, indexes, schedules, rules, queues, alarms and per-function permissions.
// When one changes, change the other: scripts/infra-check lints both and compares the synthesised
// template with the SAM one resource by resource, property by property (infra/check/equivalence.py).
import * as cdk from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ses from 'aws-cdk-lib/aws-ses';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IConstruct } from 'constructs';
import * as fs from 'fs';
import * as path from 'path';

/** Where the release zips and the staged model are, and their architecture. */
export interface EmberStackProps extends cdk.StackProps {
  /** Directory holding `ember-<function>.zip` (scripts/release). */
  readonly lambdaDir: string;
  /** The staged model layer: a directory with `ember/model.yaml` (scripts/stage-model). */
  readonly modelDir: string;
  /** Whether the zips are arm64 (else x86_64). */
  readonly arm64: boolean;
}

/** The due indexes of shared/adapters/store-dynamodb/src/keys.rs: `<kind>_due` on `<kind>_shard`, `<kind>_at`. */
const DUE_KINDS = ['decay', 'drip', 'sla'] as const;

/** Acknowledges cdk-nag rules on a construct, each with its reason. */
function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) {
    cdk.Validations.of(scope).acknowledge({ id, reason });
  }
}

export class EmberStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props: EmberStackProps) {
    super(scope, id, props);

    for (const [what, file] of [['model layer', path.join(props.modelDir, 'ember', 'model.yaml')]]) {
      if (!fs.existsSync(file)) {
        throw new Error(`the ${what} is missing: ${file} (run scripts/stage-model MODEL.yaml first)`);
      }
    }

    // ---------------------------------------------------------------------------------------
    // Parameters: the same names and meanings as the SAM template.
    const ingestThrottleRate = new cdk.CfnParameter(this, 'IngestThrottleRateLimit', {
      type: 'Number', default: 200, minValue: 1,
      description: 'Steady-state requests per second the HTTP API accepts on POST /v1/events (ingest, public: the website\'s write key). Browser origins are the write keys\' own (EMBER_WRITE_KEYS); the application answers CORS itself.',
    });
    const ingestThrottleBurst = new cdk.CfnParameter(this, 'IngestThrottleBurstLimit', {
      type: 'Number', default: 400, minValue: 1,
      description: 'Burst of requests above the steady rate on POST /v1/events.',
    });
    const throttleRate = new cdk.CfnParameter(this, 'ThrottleRateLimit', {
      type: 'Number', default: 50, minValue: 1,
      description: 'Steady-state requests per second on every other route (admin API, CRM feedback, unsubscribe links, dashboard): an ingest flood does not use them up.',
    });
    const throttleBurst = new cdk.CfnParameter(this, 'ThrottleBurstLimit', {
      type: 'Number', default: 100, minValue: 1,
      description: 'Burst of requests above the steady rate on every route but ingest.',
    });
    const publicUrl = new cdk.CfnParameter(this, 'PublicUrl', {
      type: 'String', default: '', allowedPattern: '^(https://[^\\s/]+(/[^\\s]*)?)?$',
      description: 'Base URL of the API as recipients see it (custom domain), used in unsubscribe links. Empty: the HTTP API\'s execute-api endpoint.',
    });
    // One secret per consumer (shared/adapters/aws/src/settings.rs): each role reads only its own.
    const secretParam = (id: string, description: string) => new cdk.CfnParameter(this, id, {
      type: 'String', default: '', allowedPattern: '^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+)?$',
      description,
    });
    const keysSecretArn = secretParam('KeysSecretArn', 'Secrets Manager secret (JSON object of name -> string) with EMBER_WRITE_KEYS and EMBER_ADMIN_KEYS, read by ingest and api only. Empty: the stack creates an empty one.');
    const crmSecretArn = secretParam('CrmSecretArn', 'Secret with EMBER_CRM_SECRET (verifies CRM feedback), read by api only. Empty: the stack creates an empty one.');
    const webhooksSecretArn = secretParam('WebhooksSecretArn', 'Secret with the model\'s ${VAR} values (webhook URLs and signing secrets), read by handoff only. Empty: the stack creates an empty one.');
    const unsubscribeSecretArn = secretParam('UnsubscribeSecretArn', 'Secret with EMBER_UNSUBSCRIBE_SECRET (signs and verifies unsubscribe links), read by every function (each builds the email composer at start). Empty: the stack creates one with a generated value.');
    const modelPath = new cdk.CfnParameter(this, 'ModelPath', {
      type: 'String', default: '/opt/ember/model.yaml', allowedPattern: '^/.+',
      description: 'Where the functions read the model. The model layer (infra/build/model-layer, written by scripts/stage-model) puts it at /opt/ember/model.yaml.',
    });
    const sesIdentity = new cdk.CfnParameter(this, 'SesIdentity', {
      type: 'String', allowedPattern: '^([^\\s@*/]+@)?[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$',
      constraintDescription: 'a verified SES domain (example.com) or address (news@example.com); never "*"',
      description: 'SES identity (domain or address) the drip function may send from, e.g. example.com. Required, and never "*": drip may send from this identity only (see docs/deploy.md for the SES sandbox).',
    });
    const reserved = (title: string, dflt: number, description: string) => new cdk.CfnParameter(this, `${title}ReservedConcurrency`, {
      type: 'Number', default: dflt, minValue: 0, description,
    });
    const reservations: Record<string, cdk.CfnParameter> = {
      Ingest: reserved('Ingest', 50, 'Concurrent executions reserved for (and capping) ingest, so a flood of events cannot take the account\'s whole concurrency. 0: no reservation (accounts with a low concurrency quota).'),
      Api: reserved('Api', 10, 'Concurrent executions reserved for api (admin, CRM feedback, unsubscribe). 0 for none.'),
      Decay: reserved('Decay', 1, 'Concurrent executions reserved for decay (daily). 0 for none.'),
      Drip: reserved('Drip', 2, 'Concurrent executions reserved for drip (every minute), whatever ingest does. 0 for none.'),
      Feedback: reserved('Feedback', 5, 'Concurrent executions reserved for SES feedback, whatever ingest does. 0 for none.'),
      Handoff: reserved('Handoff', 5, 'Concurrent executions reserved for handoff (CRM webhooks). 0 for none.'),
    };
    const deadLetterRetention = new cdk.CfnParameter(this, 'DeadLetterRetentionSeconds', {
      type: 'Number', default: 345600, minValue: 60, maxValue: 1209600,
      description: 'Seconds the dead-letter queues keep a message (default 4 days, at most 14): long enough to replay after an outage, no longer.',
    });
    const memory = new cdk.CfnParameter(this, 'FunctionMemory', {
      type: 'Number', default: '256', allowedValues: ['128', '256', '512', '1024', '2048'],
      description: 'Memory (MB) of every function; CPU grows with it.',
    });
    const retention = new cdk.CfnParameter(this, 'LogRetentionDays', {
      type: 'Number', default: '30',
      allowedValues: ['1', '3', '5', '7', '14', '30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '3653'],
      description: 'Days CloudWatch keeps function and access logs.',
    });
    const alarmEmail = new cdk.CfnParameter(this, 'AlarmEmail', {
      type: 'String', default: '', allowedPattern: '^([^\\s@]+@[^\\s@]+)?$',
      description: 'Address subscribed to the alarm topic (confirm the subscription email). Empty for none.',
    });

    // The console's parameter groups, as in the SAM template's Metadata.
    this.templateOptions.metadata = {
      'AWS::CloudFormation::Interface': {
        ParameterGroups: [
          { Label: { default: 'HTTP API' }, Parameters: ['IngestThrottleRateLimit', 'IngestThrottleBurstLimit', 'ThrottleRateLimit', 'ThrottleBurstLimit', 'PublicUrl'] },
          { Label: { default: 'Secrets and model' }, Parameters: ['KeysSecretArn', 'CrmSecretArn', 'WebhooksSecretArn', 'UnsubscribeSecretArn', 'ModelPath'] },
          { Label: { default: 'Email' }, Parameters: ['SesIdentity'] },
          { Label: { default: 'Concurrency' }, Parameters: Object.keys(reservations).map((t) => `${t}ReservedConcurrency`) },
          { Label: { default: 'Operations' }, Parameters: ['FunctionMemory', 'LogRetentionDays', 'DeadLetterRetentionSeconds', 'AlarmEmail'] },
        ],
      },
    };

    const unless = (id: string, p: cdk.CfnParameter) => new cdk.CfnCondition(this, id, {
      expression: cdk.Fn.conditionEquals(p.valueAsString, ''),
    });
    const hasPublicUrl = new cdk.CfnCondition(this, 'HasPublicUrl', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(publicUrl.valueAsString, '')),
    });
    const hasAlarmEmail = new cdk.CfnCondition(this, 'HasAlarmEmail', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(alarmEmail.valueAsString, '')),
    });

    // ---------------------------------------------------------------------------------------
    // Secrets, one per consumer (never template parameters). `Secret` keeps its logical id from
    // the single-secret stacks (updating one keeps its contents) and holds the unsubscribe secret.
    const makeSecret = (id: string, param: cdk.CfnParameter, description: string,
      generate?: secretsmanager.CfnSecret.GenerateSecretStringProperty): string => {
      const condition = unless(`Create${id === 'Secret' ? 'Unsubscribe' : id.replace(/Secret$/, '')}Secret`, param);
      const s = new secretsmanager.CfnSecret(this, id, generate
        ? { description, generateSecretString: generate }
        : { description, secretString: '{}' });
      s.cfnOptions.condition = condition;
      s.cfnOptions.deletionPolicy = cdk.CfnDeletionPolicy.RETAIN;
      s.cfnOptions.updateReplacePolicy = cdk.CfnDeletionPolicy.RETAIN;
      acknowledge(s, {
        'AwsSolutions-SMG4': 'Rotation would break what the secret holds: API key hashes and webhook secrets shared with the CRM are rotated by their owners (several keys may be valid at once), not by a Lambda rotation function.',
      });
      return cdk.Fn.conditionIf(condition.logicalId, s.ref, param.valueAsString).toString();
    };
    const unsubscribeSecret = makeSecret('Secret', unsubscribeSecretArn,
      'Ember unsubscribe secret (EMBER_UNSUBSCRIBE_SECRET, generated), read by every function.',
      { secretStringTemplate: '{}', generateStringKey: 'EMBER_UNSUBSCRIBE_SECRET', passwordLength: 48, excludePunctuation: true });
    const keysSecret = makeSecret('KeysSecret', keysSecretArn, 'Ember API keys (EMBER_WRITE_KEYS, EMBER_ADMIN_KEYS; hashes), read by ingest and api.');
    const crmSecret = makeSecret('CrmSecret', crmSecretArn, 'Ember CRM feedback secret (EMBER_CRM_SECRET), read by api.');
    const webhooksSecret = makeSecret('WebhooksSecret', webhooksSecretArn, 'Ember webhook settings (the model\'s ${VAR} URLs and whsec_ secrets), read by handoff.');

    // ---------------------------------------------------------------------------------------
    // DynamoDB: the single table (shared/adapters/store-dynamodb/src/table.rs creates the same one locally).
    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'PK', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'SK', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: true,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    for (const kind of DUE_KINDS) {
      table.addGlobalSecondaryIndex({
        indexName: `${kind}_due`,
        partitionKey: { name: `${kind}_shard`, type: dynamodb.AttributeType.STRING },
        sortKey: { name: `${kind}_at`, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.KEYS_ONLY,
      });
    }

    // ---------------------------------------------------------------------------------------
    // Dead letters. They may hold lead data: a customer-managed key, a short retention, and
    // only the replay role (and handoff) may receive, whatever other IAM policies say.
    const deadLetterKey = new kms.Key(this, 'DeadLetterKey', {
      description: 'Ember dead-letter queues (encryption at rest).',
      enableKeyRotation: true,
      // As the SAM template: the queues it encrypts go with the stack.
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    deadLetterKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'EventBridgeDeadLetters',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
    }));
    const deadLetterQueue = (id: string) => new sqs.Queue(this, id, {
      retentionPeriod: cdk.Duration.seconds(deadLetterRetention.valueAsNumber),
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: deadLetterKey,
      dataKeyReuse: cdk.Duration.hours(1),
      enforceSSL: true,
    });
    const failedEvents = deadLetterQueue('FailedEventsQueue');
    const webhookDlq = deadLetterQueue('WebhookDeadLetterQueue');
    for (const q of [failedEvents, webhookDlq]) {
      acknowledge(q, { 'AwsSolutions-SQS3': 'This queue is itself a dead-letter queue; its depth raises an alarm.' });
    }
    const deadLetterKms = new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [deadLetterKey.keyArn] });
    const deadLetterReader = new iam.Role(this, 'DeadLetterReaderRole', {
      description: 'Reads and replays Ember\'s dead letters (`ember webhooks replay`); the only role the queues let receive.',
      assumedBy: new iam.AccountRootPrincipal(),
      inlinePolicies: {
        replay: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:SendMessage'],
              resources: [webhookDlq.queueArn, failedEvents.queueArn],
            }),
            deadLetterKms,
            // Replayed webhooks are signed with the webhooks' secrets.
            new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [webhooksSecret] }),
            // ...and carry the lead as stored (letters hold no personal data).
            new iam.PolicyStatement({ actions: ['dynamodb:GetItem'], resources: [table.tableArn] }),
          ],
        }),
      },
    });

    // ---------------------------------------------------------------------------------------
    // Events, SES.
    const bus = new events.EventBus(this, 'Bus', { eventBusName: `${this.stackName}-ember` });
    const configurationSet = new ses.ConfigurationSet(this, 'ConfigurationSet', {
      reputationMetrics: true,
      sendingEnabled: true,
      suppressionReasons: ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
    });
    configurationSet.addEventDestination('Feedback', {
      configurationSetEventDestinationName: 'ember-feedback',
      destination: ses.EventDestination.eventBus(events.EventBus.fromEventBusName(this, 'DefaultBus', 'default')),
      events: [ses.EmailSendingEvent.DELIVERY, ses.EmailSendingEvent.OPEN, ses.EmailSendingEvent.CLICK,
        ses.EmailSendingEvent.BOUNCE, ses.EmailSendingEvent.COMPLAINT],
    });

    // ---------------------------------------------------------------------------------------
    // The model layer.
    const modelLayer = new lambda.LayerVersion(this, 'ModelLayer', {
      description: 'Ember model file (validated by `ember validate` in scripts/stage-model).',
      code: lambda.Code.fromAsset(props.modelDir),
      compatibleRuntimes: [lambda.Runtime.PROVIDED_AL2023],
      compatibleArchitectures: [lambda.Architecture.ARM_64, lambda.Architecture.X86_64],
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    // ---------------------------------------------------------------------------------------
    // HTTP API.
    // No gateway CORS: the application answers CORS itself, for ingest only and for the write
    // keys' own origins (as `ember dev` does), so no admin route answers a browser preflight.
    // Named after the stack, as SAM names it.
    const httpApi = new apigwv2.HttpApi(this, 'HttpApi', { apiName: this.stackName, createDefaultStage: false });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: `/ember/${this.stackName}/http-api`,
      retention: retention.valueAsNumber as logs.RetentionDays,
      // Deleted with the stack, as in the SAM template: a kept group of this name would stop the
      // stack from being created again.
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    const stage = httpApi.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: throttleRate.valueAsNumber, burstLimit: throttleBurst.valueAsNumber },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // No client IPs or user agents: no PII in logs.
        format: apigw.AccessLogFormat.custom(JSON.stringify({
          requestId: '$context.requestId', routeKey: '$context.routeKey', status: '$context.status',
          latency: '$context.responseLatency', integrationLatency: '$context.integrationLatency',
          responseLength: '$context.responseLength', requestTime: '$context.requestTimeEpoch',
        })),
      },
    });
    const apiUrl = `https://${httpApi.apiId}.execute-api.${this.region}.${this.urlSuffix}`;
    const linkUrl = cdk.Fn.conditionIf(hasPublicUrl.logicalId, publicUrl.valueAsString, apiUrl).toString();

    // ---------------------------------------------------------------------------------------
    // Functions: one role each, holding only what its code calls.
    const alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      masterKey: kms.Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns'),
      enforceSSL: true,
    });
    const subscription = new sns.CfnSubscription(this, 'AlarmEmailSubscription', {
      topicArn: alarmTopic.topicArn, protocol: 'email', endpoint: alarmEmail.valueAsString,
    });
    subscription.cfnOptions.condition = hasAlarmEmail;
    const alarmAction = new cwActions.SnsAction(alarmTopic);

    const fn = (name: string, opts: {
      description: string; timeout: number; linkUrl: string; async: boolean;
      statements: iam.PolicyStatement[]; environment?: Record<string, string>;
      /** The secrets it reads besides the unsubscribe secret, each under its variable. */
      secrets?: Record<string, string>;
    }): lambda.Function => {
      const secrets: Record<string, string> = { EMBER_UNSUBSCRIBE_SECRET_ARN: unsubscribeSecret, ...opts.secrets };
      const title = name.charAt(0).toUpperCase() + name.slice(1);
      const logGroup = new logs.LogGroup(this, `${title}Logs`, {
        logGroupName: `/ember/${this.stackName}/${name}`,
        retention: retention.valueAsNumber as logs.RetentionDays,
        removalPolicy: cdk.RemovalPolicy.DESTROY,
      });
      const role = new iam.Role(this, `${title}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      const policy = new iam.Policy(this, `${title}Policy`, {
        roles: [role],
        statements: [
          new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
          // Only the secrets this function reads.
          new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: Object.values(secrets) }),
          ...opts.statements,
          ...(opts.async ? [new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [failedEvents.queueArn] }), deadLetterKms] : []),
        ],
      });
      const f = new lambda.Function(this, `${title}Function`, {
        description: opts.description,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: props.arm64 ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.lambdaDir, `ember-${name}.zip`)),
        memorySize: memory.valueAsNumber,
        timeout: cdk.Duration.seconds(opts.timeout),
        role,
        logGroup,
        layers: [modelLayer],
        deadLetterQueueEnabled: opts.async ? true : undefined,
        deadLetterQueue: opts.async ? failedEvents : undefined,
        environment: {
          EMBER_MODEL: modelPath.valueAsString,
          EMBER_TABLE: table.tableName,
          EMBER_BUS: bus.eventBusName,
          EMBER_SES_CONFIGURATION_SET: configurationSet.configurationSetName,
          EMBER_PUBLIC_URL: opts.linkUrl,
          RUST_LOG: 'info',
          ...secrets,
          ...opts.environment,
        },
      });
      f.node.addDependency(policy);
      // Reserved concurrency from the parameter; 0 leaves the function unreserved.
      const reservation = reservations[title];
      const isReserved = new cdk.CfnCondition(this, `${title}Reserved`, {
        expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(reservation.valueAsNumber, 0)),
      });
      (f.node.defaultChild as lambda.CfnFunction).addPropertyOverride('ReservedConcurrentExecutions',
        cdk.Fn.conditionIf(isReserved.logicalId, reservation.valueAsNumber, cdk.Aws.NO_VALUE));
      acknowledge(f, {
        'AwsSolutions-L1': 'provided.al2023 is the latest OS-only runtime; Rust needs no language runtime.',
      });
      acknowledge(policy, {
        'AwsSolutions-IAM5': 'Wildcards are only the log streams of this function\'s own log group (log-group:NAME:*) and the due indexes of Ember\'s table.',
      });
      for (const [metric, what] of [['Errors', 'errors'], ['Throttles', 'throttled']]) {
        new cloudwatch.Alarm(this, `${title}${metric}Alarm`, {
          alarmDescription: `Ember ${name} function ${what}.`,
          metric: new cloudwatch.Metric({
            namespace: 'AWS/Lambda', metricName: metric, dimensionsMap: { FunctionName: f.functionName },
            statistic: 'Sum', period: cdk.Duration.minutes(5),
          }),
          evaluationPeriods: 1,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }).addAlarmAction(alarmAction);
      }
      return f;
    };

    const tableCommits = new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem',
        'dynamodb:ConditionCheckItem'],
      resources: [table.tableArn],
    });
    const putEvents = new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [bus.eventBusArn] });
    const indexQuery = (...kinds: string[]) => new iam.PolicyStatement({
      actions: ['dynamodb:Query'], resources: kinds.map((k) => `${table.tableArn}/index/${k}_due`),
    });

    const ingest = fn('ingest', {
      description: 'Ember ingest (POST /v1/events).', timeout: 29, linkUrl: publicUrl.valueAsString, async: false,
      statements: [tableCommits, putEvents], secrets: { EMBER_KEYS_SECRET_ARN: keysSecret },
    });
    const api = fn('api', {
      description: 'Ember API (every route but POST /v1/events).', timeout: 29, linkUrl: publicUrl.valueAsString, async: false,
      secrets: { EMBER_KEYS_SECRET_ARN: keysSecret, EMBER_CRM_SECRET_ARN: crmSecret },
      statements: [
        // Reads, CRM feedback commits, erasure (batch reads and deletes), reports (scan).
        new iam.PolicyStatement({
          actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:PutItem',
            'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem'],
          resources: [table.tableArn],
        }),
        putEvents,
      ],
    });
    const decay = fn('decay', {
      description: 'Ember decay (EventBridge Scheduler, daily).', timeout: 900, linkUrl, async: true,
      statements: [tableCommits, indexQuery('decay'), putEvents],
    });
    const drip = fn('drip', {
      description: 'Ember drip steps and SLA breaches (EventBridge Scheduler, every minute).', timeout: 60, linkUrl, async: true,
      statements: [tableCommits, indexQuery('drip', 'sla'), putEvents,
        new iam.PolicyStatement({
          actions: ['ses:SendEmail'],
          resources: [
            `arn:${this.partition}:ses:${this.region}:${this.account}:identity/${sesIdentity.valueAsString}`,
            `arn:${this.partition}:ses:${this.region}:${this.account}:configuration-set/${configurationSet.configurationSetName}`,
          ],
        })],
    });
    const feedback = fn('feedback', {
      description: 'Ember SES feedback (delivered, opened, clicked, bounced, complained).', timeout: 30, linkUrl, async: true,
      statements: [tableCommits, putEvents],
    });
    const handoff = fn('handoff', {
      description: 'Ember handoff (domain messages to signed CRM webhooks).', timeout: 120, linkUrl, async: true,
      statements: [
        new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [webhookDlq.queueArn] }),
        // The lead a message is about: messages on the bus and in the queues carry no personal
        // data, the webhook gets it from the lead as stored.
        new iam.PolicyStatement({ actions: ['dynamodb:GetItem'], resources: [table.tableArn] }),
      ],
      environment: { EMBER_DLQ_URL: webhookDlq.queueUrl }, secrets: { EMBER_WEBHOOKS_SECRET_ARN: webhooksSecret },
    });

    // Routes: POST /v1/events -> ingest, everything else -> api ($default); ingest has its own
    // throttle, so a flood of events leaves the other routes theirs.
    const ingestRoutes = httpApi.addRoutes({
      path: '/v1/events', methods: [apigwv2.HttpMethod.POST],
      integration: new HttpLambdaIntegration('IngestIntegration', ingest),
    });
    const cfnStage = stage.node.defaultChild as apigwv2.CfnStage;
    cfnStage.addPropertyOverride('RouteSettings', {
      'POST /v1/events': {
        ThrottlingRateLimit: ingestThrottleRate.valueAsNumber, ThrottlingBurstLimit: ingestThrottleBurst.valueAsNumber,
      },
    });
    for (const r of ingestRoutes) stage.node.addDependency(r);
    const defaultRoute = new apigwv2.HttpRoute(this, 'DefaultRoute', {
      httpApi, routeKey: apigwv2.HttpRouteKey.DEFAULT,
      integration: new HttpLambdaIntegration('ApiIntegration', api),
    });
    for (const c of [httpApi, defaultRoute]) {
      acknowledge(c, {
        'AwsSolutions-APIG4': 'Ember authenticates every route itself: write keys (ingest) and admin keys, stored as hashes in the secret, compared in constant time; a gateway authorizer would be a second key store.',
      });
    }

    // ---------------------------------------------------------------------------------------
    // Rules: domain messages to handoff (custom bus), SES events to feedback (default bus).
    const ruleTarget = (f: lambda.IFunction) => new targets.LambdaFunction(f, {
      retryAttempts: 8, maxEventAge: cdk.Duration.hours(24), deadLetterQueue: failedEvents,
    });
    new events.Rule(this, 'HandoffRule', {
      description: 'Ember domain messages that go to the CRM webhooks.',
      eventBus: bus,
      eventPattern: { source: ['ember'], detailType: ['lead.qualified', 'lead.sla_breached', 'lead.recycled'] },
      targets: [ruleTarget(handoff)],
    });
    new events.Rule(this, 'SesFeedbackRule', {
      description: 'SES events of Ember\'s configuration set (default bus) to the feedback function.',
      eventPattern: {
        source: ['aws.ses'],
        detailType: ['Email Delivered', 'Email Opened', 'Email Clicked', 'Email Bounced', 'Email Complaint Received'],
        detail: { mail: { tags: { 'ses:configuration-set': [configurationSet.configurationSetName] } } },
      },
      targets: [ruleTarget(feedback)],
    });

    // ---------------------------------------------------------------------------------------
    // Schedules: decay daily, SLA breaches then drip every minute.
    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'EventBridge Scheduler invokes the decay and drip functions.',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
      inlinePolicies: {
        invoke: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [decay.functionArn, drip.functionArn] }),
            new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [failedEvents.queueArn] }),
            deadLetterKms,
          ],
        }),
      },
    });
    const schedule = (id: string, job: string, expression: string, description: string, f: lambda.IFunction,
      retries: number, maxAge: number) => new scheduler.CfnSchedule(this, id, {
      description,
      scheduleExpression: expression,
      scheduleExpressionTimezone: 'UTC',
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: f.functionArn,
        roleArn: schedulerRole.roleArn,
        input: JSON.stringify({ job, scheduled_time: '<aws.scheduler.scheduled-time>' }),
        retryPolicy: { maximumRetryAttempts: retries, maximumEventAgeInSeconds: maxAge },
        deadLetterConfig: { arn: failedEvents.queueArn },
      },
    });
    schedule('DecaySchedule', 'decay', 'cron(0 3 * * ? *)', 'Ember decay of quiet leads, daily.', decay, 10, 21600);
    // The next run a minute later picks up whatever this one left due.
    schedule('DripSchedule', 'drip', 'rate(1 minute)', 'Ember drip steps and SLA breaches, every minute.', drip, 2, 300);

    // ---------------------------------------------------------------------------------------
    // Dead-letter alarms.
    const depthAlarm = (id: string, q: sqs.Queue, description: string) => new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric: q.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: cdk.Duration.minutes(5) }),
      evaluationPeriods: 1,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(alarmAction);
    depthAlarm('FailedEventsAlarm', failedEvents, 'Ember events or invocations failed for good (FailedEventsQueue is not empty).');
    depthAlarm('WebhookDeadLettersAlarm', webhookDlq, 'CRM webhooks failed for good; replay with `ember webhooks replay` once the CRM answers.');

    // Only the replay role (and handoff) may receive dead letters.
    for (const q of [failedEvents, webhookDlq]) {
      q.addToResourcePolicy(new iam.PolicyStatement({
        sid: 'OnlyTheReplayRolesReceive',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sqs:ReceiveMessage'],
        resources: [q.queueArn],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': [deadLetterReader.roleArn, handoff.role!.roleArn] } },
      }));
    }

    acknowledge(this, {
      'CloudFormation-Validate::W1001': 'The outputs\' Fn::If picks each secret only under its own condition (Create*Secret).',
      'CloudFormation-Validate::W2509': 'The *SecretArn parameters are ARNs of secrets, not secrets: they show in the console like any ARN.',
    });

    // ---------------------------------------------------------------------------------------
    new cdk.CfnOutput(this, 'ApiUrl', { value: apiUrl, description: 'HTTP API endpoint (point the website\'s tracking snippet here).' });
    new cdk.CfnOutput(this, 'TableName', { value: table.tableName, description: 'DynamoDB table.' });
    new cdk.CfnOutput(this, 'BusName', { value: bus.eventBusName, description: 'Ember\'s EventBridge bus.' });
    new cdk.CfnOutput(this, 'ConfigurationSetName', { value: configurationSet.configurationSetName, description: 'SES configuration set.' });
    new cdk.CfnOutput(this, 'KeysSecretId', { value: keysSecret, description: 'Secret with EMBER_WRITE_KEYS and EMBER_ADMIN_KEYS (ingest, api).' });
    new cdk.CfnOutput(this, 'CrmSecretId', { value: crmSecret, description: 'Secret with EMBER_CRM_SECRET (api).' });
    new cdk.CfnOutput(this, 'WebhooksSecretId', { value: webhooksSecret, description: 'Secret with the model\'s webhook variables (handoff, replay).' });
    new cdk.CfnOutput(this, 'UnsubscribeSecretId', { value: unsubscribeSecret, description: 'Secret with EMBER_UNSUBSCRIBE_SECRET (every function).' });
    new cdk.CfnOutput(this, 'DeadLetterReaderRoleArn', { value: deadLetterReader.roleArn, description: 'The only role that may receive dead letters (assume it to run `ember webhooks replay`).' });
    new cdk.CfnOutput(this, 'WebhookDeadLetterQueueUrl', { value: webhookDlq.queueUrl, description: 'Webhooks that failed for good (`ember webhooks replay --queue-url ...`).' });
    new cdk.CfnOutput(this, 'FailedEventsQueueUrl', { value: failedEvents.queueUrl, description: 'Failed invocations and undeliverable events.' });
    new cdk.CfnOutput(this, 'AlarmTopicArn', { value: alarmTopic.topicArn, description: 'SNS topic of every alarm.' });
  }
}
