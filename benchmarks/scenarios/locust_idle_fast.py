"""Locust FastHttpUser, idle users (wait 5-10 s): memory per user."""

from locust import FastHttpUser, between, task


class IdleFast(FastHttpUser):
    wait_time = between(5, 10)

    @task
    def home(self):
        self.client.get("/")
