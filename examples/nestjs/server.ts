import 'reflect-metadata';
import { type ArgumentsHost, Catch, Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { hangproofExpress, installShutdown } from 'hangproof/express';
import { createObservatory } from 'hangproof/observe';

@Controller()
class HelloController {
  @Get('hello')
  hello() {
    return { hello: 'world' };
  }

  @Get('hang')
  hang() {
    return new Promise(() => {}); // never answers: the deadline does, with a 504
  }
}

@Module({ controllers: [HelloController] })
class AppModule {}

// /metrics and /status (admin token), shedding over 100 requests in flight, loop stall reports.
const observatory = await createObservatory({ maxInFlight: 100 });
const hp = hangproofExpress({ deadlineMs: 2_000, adminToken: process.env.ADMIN_TOKEN, observe: observatory });

// Nest answers the errors of its handlers (and unknown routes) itself, before Express's error
// middleware: this filter hands them to hangproof, which answers in the error shape.
@Catch()
class HangproofFilter {
  catch(err: unknown, host: ArgumentsHost): void {
    hp.edge.fail(host.switchToHttp().getResponse(), err);
  }
}

const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger: ['error', 'warn'] });
app.use(hp.middleware); // before app.listen: ahead of Nest's body parsers and routes
app.useGlobalFilters(new HangproofFilter());
installShutdown({ server: app.getHttpServer(), edge: hp.edge });
await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
console.log(await app.getUrl());
