"""Locust FastHttpUser side of the generator benchmark (zero wait, GET /)."""

from locust import FastHttpUser, constant, task


class Fast(FastHttpUser):
    wait_time = constant(0)

    @task
    def home(self):
        self.client.get("/")
