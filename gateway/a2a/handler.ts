/**
 * The A2A request handler: the SDK's DefaultRequestHandler for every method, except the one on every
 * agent's hot path, a plain blocking SendMessage, which is run here at a fraction of its cost.
 *
 * Why: the SDK's handler keeps the task through a ResultManager that, for every event of the run (submitted,
 * working, the answer, completed), loads the task from the store, deep-clones what it merges and saves it
 * again, under a per-task lock: about 130 us per request on the mock model, where the run itself costs 110.
 * Here the task is held in memory while it runs and stored when its state changes (submitted, working, its
 * end), so that GetTask, ListTasks, SubscribeToTask and CancelTask see it as they would through the SDK: its
 * events go out on the same bus (followers on this replica and, on Redis, on others), and push notifications
 * go to configs registered meanwhile.
 *
 * "Plain": a new task (no taskId, no referenceTaskIds), no push config in the request, and the caller waits
 * (no returnImmediately). Anything else goes to the SDK, unchanged. It relies on ark's executor
 * (executor.ts): a task event first, then status and artifact updates, never a bare message.
 */
import type {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from '@a2a-js/sdk'
import { TaskState } from '@a2a-js/sdk'
import type {
  A2ARequestHandler,
  AgentExecutionEvent,
  AgentExecutor,
  DefaultRequestHandler,
  ExecutionEventBusManager,
  PushNotificationSender,
  RequestContext,
  ServerCallContext,
  TaskStore,
} from '@a2a-js/sdk/server'
import { AgentEvent } from '@a2a-js/sdk/server'
import { agentMessage } from './executor.ts'
import { TERMINAL_STATES, copyOf } from './task-store.ts'

export interface HandlerParts {
  readonly store: TaskStore
  readonly buses: ExecutionEventBusManager
  readonly executor: AgentExecutor
  readonly push?: PushNotificationSender
}

export class ArkRequestHandler implements A2ARequestHandler {
  readonly #sdk: DefaultRequestHandler
  readonly #parts: HandlerParts

  constructor(sdk: DefaultRequestHandler, parts: HandlerParts) {
    this.#sdk = sdk
    this.#parts = parts
  }

  async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<Message | Task> {
    const message = params.message
    const configuration = params.configuration
    const plain =
      // Without a messageId the SDK refuses the request (invalid params): it says so below.
      message !== undefined &&
      message.messageId !== '' &&
      message.taskId === '' &&
      message.referenceTaskIds.length === 0 &&
      configuration?.taskPushNotificationConfig === undefined &&
      configuration?.returnImmediately !== true
    if (!plain) return this.#sdk.sendMessage(params, context)
    const task = await this.#run(params, message, context)
    const historyLength = configuration?.historyLength
    if (historyLength === undefined) return task
    return { ...task, history: historyLength <= 0 ? [] : task.history.slice(-historyLength) }
  }

  /** Runs the task to its end, storing it as its state changes and passing its events on. */
  async #run(params: SendMessageRequest, message: Message, context: ServerCallContext): Promise<Task> {
    const { store, buses, executor, push } = this.#parts
    const taskId = crypto.randomUUID()
    const contextId = message.contextId === '' ? crypto.randomUUID() : message.contextId
    const user: Message = { ...message, taskId, contextId }
    let task: Task = {
      id: taskId,
      contextId,
      status: undefined,
      artifacts: [],
      history: [user],
      metadata: {},
    }
    // The store is written when the state changes, but a change that the next one follows within a timer
    // tick is not written on its own: a run that ends at once is stored once, at its end. Until it answers
    // only this caller knows the task's id, so no reader misses the states in between; ListTasks shows a
    // longer run from its first tick. Each save is started in order (a store takes its copy as it is called),
    // and the last is awaited before the answer goes out.
    let stored = Promise.resolve()
    let pending: ReturnType<typeof setTimeout> | undefined
    /** The first save that failed (Redis away): the call fails with it once the run ends. */
    let failed: { readonly error: unknown } | undefined
    const save = (): void => {
      if (pending !== undefined) clearTimeout(pending)
      pending = undefined
      // Caught here: a save started by the timer has nobody awaiting it until the run ends.
      const saving = store.save(task, context).catch((error: unknown) => {
        failed ??= { error }
      })
      stored = stored.then(() => saving)
    }
    const persist = (): void => {
      if (task.status !== undefined && TERMINAL_STATES.has(task.status.state)) save()
      else pending ??= setTimeout(save, 0)
    }
    const bus = buses.createOrGetByTaskId(taskId, context)
    const onEvent = (event: AgentExecutionEvent): void => {
      const before = task.status?.state
      task = applied(task, event)
      if (event.kind === 'task' || task.status?.state !== before) persist()
      // A copy: the delivery reads the task later, when this one has moved on.
      if (push !== undefined) {
        void push.send(
          { payload: { $case: event.kind, value: event.data } } as StreamResponse,
          context,
          copyOf(task),
        )
      }
    }
    bus.on('event', onEvent)
    try {
      await executor.execute(requestContext({ ...params, message: user }, taskId, contextId, context), bus)
    } catch (err) {
      // What the SDK does for an executor that throws: the task fails, saying why, on the bus too (followers
      // and push receivers see the end). The executor ends its own tasks; this is for its bugs.
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: {
            state: TaskState.TASK_STATE_FAILED,
            message: agentMessage(
              taskId,
              contextId,
              `Agent execution error: ${err instanceof Error ? err.message : String(err)}`,
            ),
            timestamp: new Date().toISOString(),
          },
          metadata: {},
        }),
      )
    } finally {
      bus.off('event', onEvent)
      bus.finished()
      buses.cleanupByTaskId(taskId, context)
      // A run that ended without a final state (it cannot, but) is still stored as it stands.
      if (pending !== undefined) save()
    }
    await stored
    if (failed !== undefined) throw failed.error
    return task
  }

  getAgentCard(): Promise<AgentCard> {
    return this.#sdk.getAgentCard()
  }

  getAuthenticatedExtendedAgentCard(
    params: GetExtendedAgentCardRequest,
    context: ServerCallContext,
  ): Promise<AgentCard> {
    return this.#sdk.getAuthenticatedExtendedAgentCard(params, context)
  }

  sendMessageStream(
    params: SendMessageRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    return this.#sdk.sendMessageStream(params, context)
  }

  getTask(params: GetTaskRequest, context: ServerCallContext): Promise<Task> {
    return this.#sdk.getTask(params, context)
  }

  cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    return this.#sdk.cancelTask(params, context)
  }

  createTaskPushNotificationConfig(
    params: TaskPushNotificationConfig,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    return this.#sdk.createTaskPushNotificationConfig(params, context)
  }

  getTaskPushNotificationConfig(
    params: GetTaskPushNotificationConfigRequest,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    return this.#sdk.getTaskPushNotificationConfig(params, context)
  }

  listTaskPushNotificationConfigs(
    params: ListTaskPushNotificationConfigsRequest,
    context: ServerCallContext,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    return this.#sdk.listTaskPushNotificationConfigs(params, context)
  }

  deleteTaskPushNotificationConfig(
    params: DeleteTaskPushNotificationConfigRequest,
    context: ServerCallContext,
  ): Promise<void> {
    return this.#sdk.deleteTaskPushNotificationConfig(params, context)
  }

  resubscribe(
    params: SubscribeToTaskRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    return this.#sdk.resubscribe(params, context)
  }

  listTasks(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    return this.#sdk.listTasks(params, context)
  }
}

/**
 * What the executor reads of its call, without the SDK's RequestContext, whose constructor deep-clones the
 * whole request: this request was just parsed and is not shared.
 */
function requestContext(
  request: SendMessageRequest & { readonly message: Message },
  taskId: string,
  contextId: string,
  context: ServerCallContext,
): RequestContext {
  // Structurally a RequestContext: its fields, and userMessage as a plain value rather than a getter.
  return { request, taskId, contextId, context, task: undefined, userMessage: request.message }
}

/**
 * The task after one of its events, as the SDK's ResultManager merges them: a status replaces the status (and
 * its message joins the history), except after the task ended (a cancel that lost a race); an artifact is
 * added, appended to, or replaced by id. The task's arrays are this handler's own; the objects in them may be
 * the events' (other listeners hold those too), so they are replaced, never changed.
 */
function applied(task: Task, event: AgentExecutionEvent): Task {
  switch (event.kind) {
    case 'task': {
      const given = event.data
      return {
        ...given,
        artifacts: [...given.artifacts],
        history: given.history.length > 0 ? [...given.history] : task.history,
      }
    }
    case 'statusUpdate': {
      const state = task.status?.state
      const status = event.data.status
      if (
        status === undefined ||
        (state !== undefined && TERMINAL_STATES.has(state) && status.state !== state)
      )
        return task
      task.status = status
      const said = status.message
      if (said !== undefined && !task.history.some((m) => m.messageId === said.messageId))
        task.history.push(said)
      return task
    }
    case 'artifactUpdate': {
      const artifact = event.data.artifact
      if (artifact === undefined) return task
      const at = task.artifacts.findIndex((a) => a.artifactId === artifact.artifactId)
      const existing = task.artifacts[at]
      if (existing === undefined) task.artifacts.push(artifact)
      else
        task.artifacts[at] = event.data.append
          ? { ...existing, parts: [...existing.parts, ...artifact.parts] }
          : artifact
      return task
    }
    case 'message':
      return task
  }
}
