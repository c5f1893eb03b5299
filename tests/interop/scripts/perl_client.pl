#!/usr/bin/perl
# A Gearman::Client for tests/interop/test_perl.py; prints one JSON object with everything it saw.
# Usage: perl perl_client.pl HOST PORT SCENARIO
#   background   dispatch_background one `reverse` job and get_status() it (run while no worker is up)
#   foreground   do_task (normal, high, failing), then a taskset of several tasks with callbacks
use strict;
use warnings;
use Gearman::Client;
use JSON::PP;

my ($host, $port, $scenario) = @ARGV;
die "usage: $0 HOST PORT SCENARIO\n" unless defined $scenario;

# command_timeout bounds every wait for a server reply; task timeouts bound waiting for a worker.
my $client = Gearman::Client->new(job_servers => ["$host:$port"], command_timeout => 20);
my %out;

if ($scenario eq 'background') {
    my $handle = $client->dispatch_background(reverse => 'perl-bg', {uniq => 'perl-bg-unique'});
    my $status = $client->get_status($handle);
    %out = (
        handle  => $handle,
        known   => $status ? ($status->known ? JSON::PP::true : JSON::PP::false) : undef,
        running => $status ? ($status->running ? JSON::PP::true : JSON::PP::false) : undef,
    );
}
elsif ($scenario eq 'foreground') {
    my $result = $client->do_task(reverse => 'hello', {timeout => 20});
    $out{do_task} = $result ? $$result : undef;
    my $high = $client->do_task(reverse => 'urgent', {priority => 'high', timeout => 20});
    $out{do_task_high} = $high ? $$high : undef;
    my $failed = 0;
    my $fail_result = $client->do_task(perl_fail => 'doomed', {timeout => 20, on_fail => sub { $failed = 1 }});
    $out{do_task_fail} = {result => $fail_result ? $$fail_result : undef, on_fail => $failed};

    my (%completed, @statuses);
    my $taskset = $client->new_task_set;
    for my $word (qw(alpha beta gamma)) {
        $taskset->add_task(reverse => $word, {on_complete => sub { $completed{$word} = ${ $_[0] } }});
    }
    $taskset->add_task(progress => 'p', {
        on_status   => sub { push @statuses, [@_] },
        on_complete => sub { $completed{progress} = ${ $_[0] } },
    });
    $taskset->wait(timeout => 20);
    $out{taskset}  = \%completed;
    $out{statuses} = \@statuses;
}
else {
    die "unknown scenario $scenario\n";
}
print JSON::PP->new->canonical->pretty->encode(\%out);
