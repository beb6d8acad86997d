"""Everything a running node holds, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rushgate.adapters.security import Argon2Hasher, JwtSigner
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.config import Settings
from rushgate.domain.clock import Clock, SystemClock
from rushgate.services.auth import AuthService
from rushgate.services.enrollment import EnrollmentService
from rushgate.services.registry import RegistryService


@dataclass
class Container:
    settings: Settings
    clock: Clock
    storage: SqlStorage
    auth: AuthService
    enrollment: EnrollmentService
    registry: RegistryService

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Container:
        clock = clock or SystemClock()
        storage = SqlStorage.from_urls(
            settings.effective_database_url,
            settings.database_replica_url,
            clock,
            pool_size=settings.database_pool_size,
        )
        hasher = Argon2Hasher(settings.password_hash_cost)
        signer = JwtSigner(
            settings.effective_secret_key(), clock, timedelta(seconds=settings.token_ttl_seconds)
        )
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            auth=AuthService(storage, hasher, signer),
            enrollment=EnrollmentService(storage, clock),
            registry=RegistryService(storage, hasher, hasher.hash_many),
        )

    async def close(self) -> None:
        await self.storage.close()
