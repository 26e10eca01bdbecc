// Ember's stack in CDK: the resources of ../../template.yaml (SAM), one for one — same
// parameters, table, indexes, schedules, rules, queues, alarms and per-function permissions.
// When one changes, change the other (scripts/infra-check lints and synthesises both).
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

/** The due indexes of shared/aws/src/keys.rs: `<kind>_due` on `<kind>_shard`, `<kind>_at`. */
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
    const allowedOrigins = new cdk.CfnParameter(this, 'AllowedOrigins', {
      type: 'CommaDelimitedList',
      default: 'https://www.example.com',
      description: 'Browser origins allowed to call the API (CORS), comma-separated.',
    });
    const throttleRate = new cdk.CfnParameter(this, 'ThrottleRateLimit', {
      type: 'Number', default: 200, minValue: 1,
      description: 'Steady-state requests per second the HTTP API accepts (every route).',
    });
    const throttleBurst = new cdk.CfnParameter(this, 'ThrottleBurstLimit', {
      type: 'Number', default: 400, minValue: 1,
      description: 'Burst of requests the HTTP API accepts above the steady rate.',
    });
    const publicUrl = new cdk.CfnParameter(this, 'PublicUrl', {
      type: 'String', default: '', allowedPattern: '^(https://[^\\s/]+(/[^\\s]*)?)?$',
      description: 'Base URL of the API as recipients see it (custom domain), for unsubscribe links. Empty: the execute-api endpoint.',
    });
    const existingSecretArn = new cdk.CfnParameter(this, 'ExistingSecretArn', {
      type: 'String', default: '', allowedPattern: '^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+)?$',
      description: 'Secrets Manager secret (JSON name -> string) with Ember keys and webhook secrets. Empty: the stack creates one.',
    });
    const modelPath = new cdk.CfnParameter(this, 'ModelPath', {
      type: 'String', default: '/opt/ember/model.yaml', allowedPattern: '^/.+',
      description: 'Where the functions read the model (the model layer puts it at /opt/ember/model.yaml).',
    });
    const sesIdentity = new cdk.CfnParameter(this, 'SesIdentity', {
      type: 'String', default: '*', allowedPattern: '^[^\\s]+$',
      description: 'SES identity (domain or address) the drip function may send from. "*" in the SES sandbox.',
    });
    const memory = new cdk.CfnParameter(this, 'FunctionMemory', {
      type: 'Number', default: '256', allowedValues: ['128', '256', '512', '1024', '2048'],
      description: 'Memory (MB) of every function.',
    });
    const retention = new cdk.CfnParameter(this, 'LogRetentionDays', {
      type: 'Number', default: '30',
      allowedValues: ['1', '3', '5', '7', '14', '30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '3653'],
      description: 'Days CloudWatch keeps function and access logs.',
    });
    const alarmEmail = new cdk.CfnParameter(this, 'AlarmEmail', {
      type: 'String', default: '', allowedPattern: '^([^\\s@]+@[^\\s@]+)?$',
      description: 'Address subscribed to the alarm topic. Empty for none.',
    });

    const createSecret = new cdk.CfnCondition(this, 'CreateSecret', {
      expression: cdk.Fn.conditionEquals(existingSecretArn.valueAsString, ''),
    });
    const hasPublicUrl = new cdk.CfnCondition(this, 'HasPublicUrl', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(publicUrl.valueAsString, '')),
    });
    const hasAlarmEmail = new cdk.CfnCondition(this, 'HasAlarmEmail', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(alarmEmail.valueAsString, '')),
    });

    // ---------------------------------------------------------------------------------------
    // Secret: keys, webhook secrets, unsubscribe secret (never template parameters).
    const secret = new secretsmanager.CfnSecret(this, 'Secret', {
      description: 'Ember settings (JSON object of name -> string). Add EMBER_WRITE_KEYS, EMBER_ADMIN_KEYS, EMBER_CRM_SECRET and the model\'s webhook variables.',
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'EMBER_UNSUBSCRIBE_SECRET',
        passwordLength: 48,
        excludePunctuation: true,
      },
    });
    secret.cfnOptions.condition = createSecret;
    const secretArn = cdk.Fn.conditionIf(createSecret.logicalId, secret.ref, existingSecretArn.valueAsString).toString();

    // ---------------------------------------------------------------------------------------
    // DynamoDB: the single table (shared/aws/src/table.rs creates the same one locally).
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
    // Dead letters.
    const failedEvents = new sqs.Queue(this, 'FailedEventsQueue', {
      retentionPeriod: cdk.Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const webhookDlq = new sqs.Queue(this, 'WebhookDeadLetterQueue', {
      retentionPeriod: cdk.Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    for (const q of [failedEvents, webhookDlq]) {
      acknowledge(q, { 'AwsSolutions-SQS3': 'This queue is itself a dead-letter queue; its depth raises an alarm.' });
    }

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
    const httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      createDefaultStage: false,
      corsPreflight: {
        allowOrigins: allowedOrigins.valueAsList,
        allowMethods: [apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.DELETE,
          apigwv2.CorsHttpMethod.OPTIONS],
        allowHeaders: ['authorization', 'content-type'],
        maxAge: cdk.Duration.minutes(10),
      },
    });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: `/ember/${this.stackName}/http-api`,
      retention: retention.valueAsNumber as logs.RetentionDays,
    });
    httpApi.addStage('DefaultStage', {
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
    }): lambda.Function => {
      const title = name.charAt(0).toUpperCase() + name.slice(1);
      const logGroup = new logs.LogGroup(this, `${title}Logs`, {
        logGroupName: `/ember/${this.stackName}/${name}`,
        retention: retention.valueAsNumber as logs.RetentionDays,
      });
      const role = new iam.Role(this, `${title}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      const policy = new iam.Policy(this, `${title}Policy`, {
        roles: [role],
        statements: [
          new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
          new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secretArn] }),
          ...opts.statements,
          ...(opts.async ? [new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [failedEvents.queueArn] })] : []),
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
          EMBER_SECRETS_ARN: secretArn,
          EMBER_PUBLIC_URL: opts.linkUrl,
          RUST_LOG: 'info',
          ...opts.environment,
        },
      });
      f.node.addDependency(policy);
      acknowledge(f, {
        'AwsSolutions-L1': 'provided.al2023 is the latest OS-only runtime; Rust needs no language runtime.',
      });
      acknowledge(policy, {
        'AwsSolutions-IAM5': 'Wildcards are only the log streams of this function\'s own log group (log-group:NAME:*), the due indexes of Ember\'s table, and in the SES sandbox the recipient identities (SesIdentity "*").',
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
      statements: [tableCommits, putEvents],
    });
    const api = fn('api', {
      description: 'Ember API (every route but POST /v1/events).', timeout: 29, linkUrl: publicUrl.valueAsString, async: false,
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
      statements: [new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [webhookDlq.queueArn] })],
      environment: { EMBER_DLQ_URL: webhookDlq.queueUrl },
    });

    // Routes: POST /v1/events -> ingest, everything else -> api ($default).
    httpApi.addRoutes({
      path: '/v1/events', methods: [apigwv2.HttpMethod.POST],
      integration: new HttpLambdaIntegration('IngestIntegration', ingest),
    });
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
    // Schedules: decay daily, drip (then SLA breaches) every minute.
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

    acknowledge(this, {
      'CloudFormation-Validate::W1001': 'The outputs\' Fn::If picks the Secret only under its own condition (CreateSecret).',
      'CloudFormation-Validate::W2509': 'ExistingSecretArn is the ARN of a secret, not a secret: it shows in the console like any ARN.',
    });
    acknowledge(secret, {
      'AwsSolutions-SMG4': 'Rotation would break what the secret holds: API key hashes and webhook secrets shared with the CRM are rotated by their owners (several keys may be valid at once), not by a Lambda rotation function.',
    });

    // ---------------------------------------------------------------------------------------
    new cdk.CfnOutput(this, 'ApiUrl', { value: apiUrl, description: 'HTTP API endpoint (point the website\'s tracking snippet here).' });
    new cdk.CfnOutput(this, 'TableName', { value: table.tableName });
    new cdk.CfnOutput(this, 'BusName', { value: bus.eventBusName });
    new cdk.CfnOutput(this, 'ConfigurationSetName', { value: configurationSet.configurationSetName });
    new cdk.CfnOutput(this, 'SecretArn', { value: secretArn });
    new cdk.CfnOutput(this, 'WebhookDeadLetterQueueUrl', { value: webhookDlq.queueUrl });
    new cdk.CfnOutput(this, 'FailedEventsQueueUrl', { value: failedEvents.queueUrl });
    new cdk.CfnOutput(this, 'AlarmTopicArn', { value: alarmTopic.topicArn });
  }
}
