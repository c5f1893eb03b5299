<?php
// A pecl-gearman client for tests/interop/test_php.py; prints one JSON object with everything it saw.
// Usage: php php_client.php HOST PORT SCENARIO
//   queue-background  doBackground one `reverse` job, then jobStatus() on it (run while no worker is up)
//   do                doNormal/doHigh/doLow, intermediate packets, failures, the three background variants
//   tasks             addTask/addTaskHigh/addTaskBackground + runTasks with data/status/complete/fail callbacks
//   reverse FUNC WORKLOAD UNIQUE   one doNormal(FUNC, WORKLOAD, UNIQUE)
declare(strict_types=1);

[, $host, $port, $scenario] = $argv;
$client = new GearmanClient();
if (!$client->addServer($host, (int) $port)) {
    fwrite(STDERR, "php_client: addServer failed: " . $client->error() . "\n");
    exit(2);
}
// Every blocking call gives up after 20 s instead of hanging the test.
$client->setTimeout(20000);

function call(GearmanClient $client, string $method, string ...$args): array
{
    $result = $client->$method(...$args);
    return ['result' => $result, 'rc' => $client->returnCode()];
}

function scenario_queue_background(GearmanClient $client): array
{
    $handle = $client->doBackground('reverse', 'queued-before-worker', 'php-bg-unique');
    return [
        'handle' => $handle,
        'rc' => $client->returnCode(),
        // [known, running, numerator, denominator]
        'status' => $client->jobStatus($handle),
    ];
}

function scenario_do(GearmanClient $client): array
{
    return [
        'doNormal' => call($client, 'doNormal', 'reverse', 'normal'),
        'doHigh' => call($client, 'doHigh', 'reverse', 'high'),
        'doLow' => call($client, 'doLow', 'reverse', 'low'),
        // libgearman's do*() gathers WORK_DATA chunks in front of the final result.
        'chatty' => call($client, 'doNormal', 'chatty', 'x'),
        'fail_send' => call($client, 'doNormal', 'fail_send', 'f1'),
        'fail_return' => call($client, 'doNormal', 'fail_return', 'f2'),
        'doBackground' => call($client, 'doBackground', 'reverse', 'bg-normal'),
        'doHighBackground' => call($client, 'doHighBackground', 'reverse', 'bg-high'),
        'doLowBackground' => call($client, 'doLowBackground', 'reverse', 'bg-low'),
        'success' => GEARMAN_SUCCESS,
        'work_fail' => GEARMAN_WORK_FAIL,
    ];
}

function scenario_tasks(GearmanClient $client): array
{
    $events = [];
    $record = function (string $kind) use (&$events): Closure {
        return function (GearmanTask $task, $context) use (&$events, $kind): void {
            $event = ['kind' => $kind, 'task' => $context, 'handle' => $task->jobHandle(), 'data' => $task->data()];
            if ($kind === 'status') {
                $event['numerator'] = $task->taskNumerator();
                $event['denominator'] = $task->taskDenominator();
            }
            $events[] = $event;
        };
    };
    $client->setCreatedCallback($record('created'));
    $client->setDataCallback($record('data'));
    $client->setWarningCallback($record('warning'));
    $client->setStatusCallback($record('status'));
    $client->setCompleteCallback($record('complete'));
    $client->setFailCallback($record('fail'));

    $tasks = [
        'normal' => $client->addTask('reverse', 'task-normal', 'normal', 'php-task-unique'),
        'high' => $client->addTaskHigh('reverse', 'task-high', 'high'),
        'background' => $client->addTaskBackground('reverse', 'task-background', 'background'),
        'chatty' => $client->addTask('chatty', 'task-chatty', 'chatty'),
        'fail' => $client->addTask('fail_send', 'task-fail', 'fail'),
    ];
    $added = array_map(fn ($task) => $task instanceof GearmanTask, $tasks);
    $ok = $client->runTasks();
    return [
        'added' => $added,
        'runTasks' => $ok,
        'rc' => $client->returnCode(),
        'events' => $events,
    ];
}

$out = match ($scenario) {
    'queue-background' => scenario_queue_background($client),
    'do' => scenario_do($client),
    'tasks' => scenario_tasks($client),
    'reverse' => call($client, 'doNormal', $argv[4], $argv[5], $argv[6]),
    default => null,
};
if ($out === null) {
    fwrite(STDERR, "php_client: unknown scenario $scenario\n");
    exit(2);
}
echo json_encode($out, JSON_PRETTY_PRINT), "\n";
