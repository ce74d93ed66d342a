import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.ClientCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;

/**
 * A grpc-java client over a Unix socket, made the way grpc-java's
 * documentation makes one (Netty, epoll, a DomainSocketAddress), with no
 * authority override: grpc-java then sends the socket path as the HTTP/2
 * :authority.
 *
 * <p>Usage: UnixSocketClient SOCKET. It calls grpc.health.v1.Health/Check
 * and libcrun_shim.v1.SystemService/Version with empty requests (messages
 * as raw protobuf bytes, so that no code needs generating) and prints one
 * line per call: the method and the answer in hex. The first line is the
 * channel's authority. Any failure throws (exit status 1).
 */
public final class UnixSocketClient {
  private static final MethodDescriptor.Marshaller<byte[]> BYTES =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
          return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
          try {
            return stream.readAllBytes();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };

  private static byte[] call(ManagedChannel channel, String method) {
    MethodDescriptor<byte[], byte[]> descriptor =
        MethodDescriptor.<byte[], byte[]>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(method)
            .setRequestMarshaller(BYTES)
            .setResponseMarshaller(BYTES)
            .build();
    return ClientCalls.blockingUnaryCall(
        channel, descriptor, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS), new byte[0]);
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: UnixSocketClient SOCKET");
      System.exit(2);
    }
    EpollEventLoopGroup group = new EpollEventLoopGroup(1);
    ManagedChannel channel =
        NettyChannelBuilder.forAddress(new DomainSocketAddress(args[0]))
            .eventLoopGroup(group)
            .channelType(EpollDomainSocketChannel.class)
            .usePlaintext()
            .build();
    try {
      System.out.println("authority " + channel.authority());
      for (String method :
          new String[] {"grpc.health.v1.Health/Check", "libcrun_shim.v1.SystemService/Version"}) {
        System.out.println(method + " " + HexFormat.of().formatHex(call(channel, method)));
      }
    } finally {
      channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
    }
  }
}
