// Socket.IO 4.8 over its websocket transport only, with the same semantics as the hub:
// token auth, announce → registry sync to the announcer and a delta to everyone else,
// bench events broadcast to everyone else or sent to one module's room.
import { createServer } from 'node:http'
import process from 'node:process'
import { Server } from 'socket.io'

const token = process.env.AUTHENTICATION_TOKEN
const modules = []
const http = createServer()
const io = new Server(http, { transports: ['websocket'], serveClient: false })

io.use((socket, next) => socket.handshake.auth.token === token ? next() : next(new Error('invalid token')))
io.on('connection', (socket) => {
  socket.on('module:announce', (entry) => {
    modules.push(entry)
    socket.join(entry.name)
    socket.emit('registry:modules:sync', { modules })
    socket.broadcast.emit('module:announced', entry)
  })
  socket.on('bench', data => socket.broadcast.emit('bench', data))
  socket.on('bench:to', (name, data) => socket.to(name).emit('bench', data))
})
http.listen(Number(process.env.PORT), '127.0.0.1', 511)
