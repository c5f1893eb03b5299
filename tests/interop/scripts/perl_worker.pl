#!/usr/bin/perl
# A Gearman::Worker for tests/interop/test_perl.py.
# Usage: perl perl_worker.pl HOST PORT MAX_JOBS
# Prints one JSON line per job, exits 0 after MAX_JOBS jobs (3 if it gives up after 60 s).
use strict;
use warnings;
use Gearman::Worker;
use JSON::PP;

my ($host, $port, $max_jobs) = @ARGV;
die "usage: $0 HOST PORT MAX_JOBS\n" unless defined $max_jobs;
$| = 1;    # each JSON line must reach the test even if we are killed afterwards

my $json     = JSON::PP->new->canonical;
my $done     = 0;
my $deadline = time + 60;

sub record {
    my ($job) = @_;
    $done++;
    print $json->encode({function => $job->{func}, handle => $job->handle, workload => $job->arg}), "\n";
}

my $worker = Gearman::Worker->new(job_servers => ["$host:$port"]);

$worker->register_function(reverse => sub {
    my ($job) = @_;
    record($job);
    return scalar reverse $job->arg;
});

# Reports progress before completing.
$worker->register_function(progress => sub {
    my ($job) = @_;
    record($job);
    $job->set_status(1, 2);
    $job->set_status(2, 2);
    return "progress:" . $job->arg;
});

# Returning undef makes Gearman::Worker send WORK_FAIL.
$worker->register_function(perl_fail => sub {
    my ($job) = @_;
    record($job);
    return undef;
});

# work() returns when stop_if says so; it is asked after every job and at least every ~12 s when idle.
$worker->work(stop_if => sub { $done >= $max_jobs || time > $deadline });
exit($done >= $max_jobs ? 0 : 3);
