<?php
// A pecl-gearman worker for tests/interop/test_php.py.
// Usage: php php_worker.php HOST PORT MAX_JOBS
// Prints one JSON line per job it handles, and exits 0 after MAX_JOBS jobs (3 if it gives up after 60 s).
declare(strict_types=1);

[, $host, $port, $maxJobs] = $argv;
$maxJobs = (int) $maxJobs;
$done = 0;

function record(GearmanJob $job): void
{
    global $done;
    $done++;
    echo json_encode([
        'function' => $job->functionName(),
        'handle' => $job->handle(),
        'unique' => $job->unique(),
        'workload' => $job->workload(),
    ]), "\n";
}

$worker = new GearmanWorker();
$worker->addServer($host, (int) $port);
// work() returns at least every 250 ms, so the job limit and the deadline below are always checked.
$worker->setTimeout(250);

$worker->addFunction('reverse', function (GearmanJob $job): string {
    record($job);
    return strrev($job->workload());
});

// Sends every kind of intermediate packet before completing.
$worker->addFunction('chatty', function (GearmanJob $job): string {
    record($job);
    $job->sendData('data-1');
    $job->sendStatus(1, 3);
    $job->sendWarning('warning-1');
    $job->sendStatus(2, 3);
    $job->sendData('data-2');
    return 'done:' . $job->workload();
});

// Fails explicitly with WORK_FAIL.
$worker->addFunction('fail_send', function (GearmanJob $job): ?string {
    record($job);
    $job->sendFail();
    return null;
});

// Fails through the return code instead of an explicit packet.
$worker->addFunction('fail_return', function (GearmanJob $job): ?string {
    record($job);
    $job->setReturn(GEARMAN_WORK_FAIL);
    return null;
});

$deadline = microtime(true) + 60;
while ($done < $maxJobs && microtime(true) < $deadline) {
    if (@$worker->work()) {
        continue;
    }
    $rc = $worker->returnCode();
    if (in_array($rc, [GEARMAN_TIMEOUT, GEARMAN_IO_WAIT, GEARMAN_NO_JOBS, GEARMAN_WORK_FAIL], true)) {
        continue;
    }
    fwrite(STDERR, "php_worker: work() failed with code $rc: " . $worker->error() . "\n");
    exit(2);
}
exit($done >= $maxJobs ? 0 : 3);
